"""The object copy paths against real SeaweedFS, with small limits so every branch runs:
CopyObject, UploadPartCopy (above the CopyObject limit), streamed PUT, streamed multipart."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psutil
import pytest

from bucketjobs.storage.components import Component, endpoint_location
from bucketjobs.storage.copy import SourceChanged, server_side_copy, streamed_copy
from bucketjobs.storage.http import S3Http
from tests.support.faultproxy import FaultProxy
from tests.support.objects import describe
from tests.support.objects import keys as listed_keys
from tests.support.stack import Store

MiB = 1024 * 1024
Refuse = Callable[[Any], Awaitable[bool]]


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


def _each_part_fails_once(method: str, tried: list[str]) -> Refuse:
    """A FaultProxy `refuse` hook: the first `method` request for each part (by its part
    number, or its byte range for a GET) fails with 503; every such request is recorded."""
    failed: set[str] = set()

    async def refuse(request: Any) -> bool:
        which = request.query.get("partNumber") or request.headers.get("Range")
        if request.method != method or which is None:
            return False
        tried.append(which)
        if which in failed:
            return False
        failed.add(which)
        return True

    return refuse


async def _through(proxy: FaultProxy, store: Any) -> S3Http:
    return S3Http(_component(Store(await proxy.start(), store.access_key, store.secret_key)))


async def test_a_failed_part_of_a_server_side_copy_is_sent_again_alone(store, s3, bucket):
    """Each UploadPartCopy fails once: the copy retries that part only (retrying the
    object would need every part to succeed in one attempt, and start over each time)."""
    body = hashlib.sha256(b"parts").digest() * (12 * MiB // 32 + 3)  # 12 MiB + 96 bytes
    await _put_rich(s3, bucket, "src", body)
    tried: list[str] = []
    proxy = FaultProxy(store.endpoint, refuse=_each_part_fails_once("PUT", tried))
    http = await _through(proxy, store)
    try:
        await server_side_copy(http, bucket, "src", bucket, "dst", len(body),
                               limit=5 * MiB, part_size=5 * MiB)  # fmt: skip
    finally:
        await http.close()
        await proxy.stop()
    assert tried == ["1", "1", "2", "2", "3", "3"]
    assert await describe(s3, bucket, "src") == await describe(s3, bucket, "dst")


async def test_a_failed_part_of_a_streamed_copy_is_read_and_sent_again_alone(
    store, remote_store, s3, remote_s3, bucket
):
    """Across stores each part is read by its own ranged GET: when the GET fails, or the
    destination refuses the part, that range is read again and only that part is sent."""
    await remote_s3.create_bucket(Bucket=bucket)
    body = bytes(range(251)) * (12 * MiB // 251)
    await _put_rich(s3, bucket, "src", body)
    reads: list[str] = []
    sends: list[str] = []
    source_proxy = FaultProxy(store.endpoint, refuse=_each_part_fails_once("GET", reads))
    dest_proxy = FaultProxy(remote_store.endpoint, refuse=_each_part_fails_once("PUT", sends))
    source, dest = await _through(source_proxy, store), await _through(dest_proxy, remote_store)
    try:
        copied = await streamed_copy(source, dest, bucket, "src", bucket, "dst",
                                     threshold=5 * MiB, part_size=5 * MiB)  # fmt: skip
    finally:
        for http in (source, dest):
            await http.close()
        for proxy in (source_proxy, dest_proxy):
            await proxy.stop()
    assert copied == len(body)
    ranges = [f"bytes={a}-{min(a + 5 * MiB, len(body)) - 1}" for a in range(0, len(body), 5 * MiB)]
    # Per part: the GET refused; read again, the part refused; read again, sent.
    assert reads == [r for r in ranges for _ in range(3)], reads
    assert sends == ["1", "1", "2", "2", "3", "3"]
    assert await describe(s3, bucket, "src") == await describe(remote_s3, bucket, "dst")


@pytest.mark.parametrize("server_side", [True, False], ids=["server-side", "streamed"])
async def test_a_source_replaced_mid_copy_is_not_joined_from_two_versions(
    store, remote_store, s3, remote_s3, bucket, server_side
):
    """The source is overwritten after the first part: the next part asks for the version
    the copy began with (If-Match), so the copy ends with SourceChanged, which a job
    retries as a whole object, and leaves no object and no upload behind."""
    dest_s3 = s3 if server_side else remote_s3
    dest_bucket = bucket if server_side else await _new_bucket(remote_s3, bucket)
    await _put_rich(s3, bucket, "src", b"a" * (12 * MiB))
    parts: list[str] = []

    async def replace_after_the_first_part(request: Any) -> bool:
        part = request.query.get("partNumber") if server_side else request.headers.get("Range")
        if part is not None and request.method == ("PUT" if server_side else "GET"):
            parts.append(part)
            if len(parts) == 2:
                await s3.put_object(Bucket=bucket, Key="src", Body=b"b" * (12 * MiB))
        return False

    proxy = FaultProxy(store.endpoint, refuse=replace_after_the_first_part)
    source = await _through(proxy, store)
    dest = S3Http(_component(remote_store))
    try:
        with pytest.raises(SourceChanged) as raised:
            if server_side:
                await server_side_copy(source, bucket, "src", bucket, "dst", 12 * MiB,
                                       limit=5 * MiB, part_size=5 * MiB)  # fmt: skip
            else:
                await streamed_copy(source, dest, bucket, "src", bucket, "dst",
                                    threshold=5 * MiB, part_size=5 * MiB)  # fmt: skip
    finally:
        await source.close()
        await dest.close()
        await proxy.stop()
    assert raised.value.transient and raised.value.http_status == 412
    assert len(parts) == 2, parts  # the changed source is not asked again part by part
    assert "dst" not in await listed_keys(dest_s3, dest_bucket)
    uploads = await dest_s3.list_multipart_uploads(Bucket=dest_bucket)
    assert not uploads.get("Uploads"), uploads


async def _new_bucket(s3: Any, name: str) -> str:
    await s3.create_bucket(Bucket=name)
    return name
