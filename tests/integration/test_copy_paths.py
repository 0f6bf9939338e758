"""The object copy paths against real SeaweedFS, with small limits so every branch runs:
CopyObject, UploadPartCopy (above the CopyObject limit), streamed PUT, streamed multipart."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import psutil
import pytest

from bucketjobs.storage.components import Component, endpoint_location
from bucketjobs.storage.copy import server_side_copy, streamed_copy
from bucketjobs.storage.http import S3Http
from tests.support.faultproxy import FaultProxy
from tests.support.objects import describe
from tests.support.stack import Store

MiB = 1024 * 1024


def _component(store: Any) -> Component:
    location = endpoint_location(store.endpoint)
    return Component(0, "GENERIC_S3", location, store.access_key, store.secret_key)


@pytest.fixture
async def pools(store, remote_store) -> AsyncIterator[tuple[S3Http, S3Http]]:
    local, remote = S3Http(_component(store)), S3Http(_component(remote_store))
    yield local, remote
    await local.close()
    await remote.close()


async def _put_rich(s3: Any, bucket: str, key: str, body: bytes) -> None:
    await s3.put_object(
        Bucket=bucket, Key=key, Body=body, ContentType="application/x-test",
        ContentDisposition="inline", CacheControl="no-cache", ContentLanguage="fr",
        Metadata={"origin": "test", "n": "1"}, Tagging="a=1&b=two%20words",
    )  # fmt: skip


async def test_upload_part_copy_above_the_copy_object_limit(pools, s3, bucket):
    local, _ = pools
    body = hashlib.sha256(b"seed").digest() * (12 * MiB // 32 + 3)  # 12 MiB + 96 bytes
    await _put_rich(s3, bucket, "big/ob ject+1", body)
    await server_side_copy(
        local, bucket, "big/ob ject+1", bucket, "copy/ob ject+1", len(body),
        limit=5 * MiB, part_size=5 * MiB,
    )  # fmt: skip
    copied = await s3.head_object(Bucket=bucket, Key="copy/ob ject+1")
    assert copied["ETag"].strip('"').endswith("-3")  # three UploadPartCopy parts
    assert await describe(s3, bucket, "big/ob ject+1") == await describe(
        s3, bucket, "copy/ob ject+1"
    )


async def test_streamed_copy_single_and_multipart_keep_everything(pools, s3, remote_s3, bucket):
    local, remote = pools
    await remote_s3.create_bucket(Bucket=bucket)
    small = b"s" * 1000
    medium = bytes(range(256)) * 4096  # 1 MiB: streamed, not read whole
    large = bytes(range(251)) * (40 * MiB // 251)  # 40 MiB: multipart with 8 MiB parts
    for key, body in (("ü/small", small), ("medium", medium), ("large file", large)):
        await _put_rich(s3, bucket, key, body)
    process = psutil.Process()
    before = process.memory_info().rss
    for key in ("ü/small", "medium", "large file"):
        await streamed_copy(local, remote, bucket, key, bucket, key, threshold=16 * MiB)
    grew = process.memory_info().rss - before
    assert grew < 30 * MiB, f"RSS grew {grew / MiB:.0f} MiB copying a 40 MiB object"
    large_head = await remote_s3.head_object(Bucket=bucket, Key="large file")
    assert large_head["ETag"].strip('"').endswith("-5")
    for key in ("ü/small", "medium", "large file"):
        assert await describe(s3, bucket, key) == await describe(remote_s3, bucket, key), key


async def test_untagged_object_copies_with_metadata_and_no_tags(pools, s3, remote_s3, bucket):
    local, remote = pools
    await remote_s3.create_bucket(Bucket=bucket)
    await s3.put_object(Bucket=bucket, Key="plain", Body=b"p", Metadata={"m": "v"})
    await streamed_copy(local, remote, bucket, "plain", bucket, "plain")
    assert (await remote_s3.get_object_tagging(Bucket=bucket, Key="plain"))["TagSet"] == []
    assert (await remote_s3.head_object(Bucket=bucket, Key="plain"))["Metadata"] == {"m": "v"}


async def test_streamed_copy_from_a_source_that_answers_chunked(
    store, pools, s3, remote_s3, bucket
):
    """A gateway that sends objects chunked gives no Content-Length: the copy must still
    send each PUT with its true length (one PUT, or parts read one at a time)."""
    _, remote = pools
    await remote_s3.create_bucket(Bucket=bucket)
    proxy = FaultProxy(store.endpoint, chunked=True)
    source = S3Http(_component(Store(await proxy.start(), store.access_key, store.secret_key)))
    bodies = {"empty": b"", "small": b"s" * 1000, "medium": bytes(range(256)) * 4096,
              "large": bytes(range(251)) * (12 * MiB // 251)}  # fmt: skip
    try:
        for key, body in bodies.items():
            await _put_rich(s3, bucket, key, body)
            copied = await streamed_copy(source, remote, bucket, key, bucket, key,
                                         part_size=5 * MiB)  # fmt: skip
            assert copied == len(body)
            assert await describe(s3, bucket, key) == await describe(remote_s3, bucket, key), key
        large = await remote_s3.head_object(Bucket=bucket, Key="large")
        assert large["ETag"].strip('"').endswith("-3")  # 5 + 5 + 2 MiB parts
    finally:
        await source.close()
        await proxy.stop()
