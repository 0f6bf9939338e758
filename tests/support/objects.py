"""Comparing what two buckets hold: keys, bytes, headers, user metadata and tags."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from bucketjobs.ops.replicate import is_md5_etag
from bucketjobs.storage.copy import STANDARD_HEADERS


async def keys(client: Any, bucket: str, prefix: str = "") -> dict[str, tuple[int, str]]:
    """Every key under `prefix` (prefix removed) with its size and ETag."""
    found: dict[str, tuple[int, str]] = {}
    async for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix
    ):
        for item in page.get("Contents", []):
            found[item["Key"][len(prefix) :]] = (item["Size"], item["ETag"].strip('"'))
    return found


async def describe(client: Any, bucket: str, key: str) -> dict[str, Any]:
    """An object's content digest, standard headers, user metadata and tags."""
    answer = await client.get_object(Bucket=bucket, Key=key)
    digest = hashlib.md5()
    async with answer["Body"] as body:
        async for chunk in body.iter_chunks(1 << 20):
            digest.update(chunk)
    headers = answer["ResponseMetadata"]["HTTPHeaders"]
    tags = await client.get_object_tagging(Bucket=bucket, Key=key)
    return {
        "md5": digest.hexdigest(),
        "headers": {h: headers.get(h) for h in STANDARD_HEADERS},
        "metadata": answer.get("Metadata", {}),
        "tags": sorted((t["Key"], t["Value"]) for t in tags["TagSet"]),
    }


async def assert_same_objects(
    src: Any, src_bucket: str, dst: Any, dst_bucket: str, *, dst_prefix: str = "",
    detailed: list[str] | None = None,
) -> None:  # fmt: skip
    """Same keys and sizes, and the same bytes: by ETag where both are MD5s (single-part
    writes), by reading them for `detailed` keys — which must also carry the same headers,
    user metadata and tags."""
    source, copied = await asyncio.gather(keys(src, src_bucket), keys(dst, dst_bucket, dst_prefix))
    assert sorted(copied) == sorted(source)
    for key, (size, etag) in source.items():
        assert copied[key][0] == size, key
        if is_md5_etag(etag) and is_md5_etag(copied[key][1]):
            assert copied[key][1] == etag, key
    for key in detailed or []:
        a, b = await asyncio.gather(
            describe(src, src_bucket, key), describe(dst, dst_bucket, dst_prefix + key)
        )
        assert a == b, key
