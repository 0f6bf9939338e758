"""The hand-written S3 path against the libraries: the same requests through the lean
HTTP/1.1 pool, through aiohttp (S3Http(lean=False)) and through botocore (aiobotocore),
against real SeaweedFS, must give the same answers.

Endpoints: an explicit port, the default port 80, and a gateway that re-frames every answer
as chunked. Requests: metadata with runs of spaces, RFC 2047 and raw UTF-8 metadata,
objects whose bytes look like an S3 error document, 100 Continue before the answer, and
listings of keys with every awkward character. The lean pool is kept because it passes
all of them; a case it failed would be routed to aiohttp instead (S3Http's `lean`).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from bucketjobs.storage.components import Component, endpoint_location
from bucketjobs.storage.errors import AnswerTooLarge
from bucketjobs.storage.http import S3Http
from bucketjobs.storage.lister import parse_page
from tests.support.faultproxy import FaultProxy
from tests.support.s3 import s3_client
from tests.support.stack import Store

ERROR_LOOKALIKE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
    b"<Message>this object is an XML document, not an error</Message></Error>"
)
SPACED = {"note": "a  b\tc   d", "lead": "  trimmed  ", "mime": "=?UTF-8?B?WsO8cmljaA==?="}
RAW_UTF8 = {"city": "Zürich", "name": "東京 ✓"}
KEYS = ["plain", "with space", "ü/東京", "a+b=c&d", "100%/x%2Fy", "tilde~star*", "q?hash#",
        "dir/", "semi;colon", "quote'\"", "<angle>&amp;"]  # fmt: skip


@dataclass
class Clients:
    lean: S3Http
    aio: S3Http
    boto: Any


@pytest.fixture(params=["explicit-port", "default-port", "chunked-gateway"])
async def clients(request, store: Store) -> AsyncIterator[Clients]:
    target, proxy = store, None
    if request.param == "default-port":
        target = request.getfixturevalue("default_port_store")
    elif request.param == "chunked-gateway":
        proxy = FaultProxy(store.endpoint, chunked=True)
        target = Store(await proxy.start(), store.access_key, store.secret_key)
    component = Component(0, "GENERIC_S3", endpoint_location(target.endpoint),
                          target.access_key, target.secret_key)  # fmt: skip
    lean, aio = S3Http(component), S3Http(component, lean=False)
    if proxy is not None:  # the gateway really re-frames: no length, chunks
        _, headers, _ = await lean.request("GET", "", query={})
        assert headers.get("transfer-encoding") == "chunked" and "content-length" not in headers
    try:
        async with s3_client(target.endpoint, target.access_key, target.secret_key) as boto:
            yield Clients(lean, aio, boto)
    finally:
        await lean.close()
        await aio.close()
        if proxy is not None:
            await proxy.stop()


_counter = iter(range(1_000_000))


@pytest.fixture
async def diff_bucket(clients: Clients) -> str:
    name = f"diff-{next(_counter)}"
    await clients.lean.request("PUT", name)
    return name


async def _head(clients: Clients, bucket: str, key: str) -> list[dict[str, Any]]:
    """What each client sees of an object's headers and metadata."""
    seen = []
    for http in (clients.lean, clients.aio):
        status, headers, body = await http.request("HEAD", bucket, key)
        meta = {
            k.lower()[11:]: v for k, v in headers.items() if k.lower().startswith("x-amz-meta-")
        }
        seen.append({"status": status, "etag": headers["ETag"], "type": headers.get("Content-Type"),
                     "length": int(headers["Content-Length"]), "meta": meta, "body": body})  # fmt: skip
    answer = await clients.boto.head_object(Bucket=bucket, Key=key)
    seen.append({"status": 200, "etag": answer["ETag"], "type": answer.get("ContentType"),
                 "length": answer["ContentLength"], "meta": answer["Metadata"], "body": b""})  # fmt: skip
    return seen


async def _get(clients: Clients, bucket: str, key: str) -> list[tuple[int, str, bytes]]:
    seen = []
    for http in (clients.lean, clients.aio):
        status, headers, body = await http.request("GET", bucket, key)
        seen.append((status, headers["ETag"], body))
    answer = await clients.boto.get_object(Bucket=bucket, Key=key)
    async with answer["Body"] as stream:
        seen.append((200, answer["ETag"], await stream.read()))
    return seen


async def test_metadata_with_spaces_and_rfc2047_round_trips_identically(clients, diff_bucket):
    headers = {f"x-amz-meta-{k}": v for k, v in SPACED.items()}
    headers["content-type"] = "text/plain;  charset=utf-8"
    await clients.lean.request("PUT", diff_bucket, "lean", headers=headers, data=b"x")
    await clients.aio.request("PUT", diff_bucket, "aio", headers=headers, data=b"x")
    await clients.boto.put_object(Bucket=diff_bucket, Key="boto", Body=b"x", Metadata=SPACED,
                                  ContentType="text/plain;  charset=utf-8")  # fmt: skip
    views = [
        view for key in ("lean", "aio", "boto") for view in await _head(clients, diff_bucket, key)
    ]
    assert all(view == views[0] for view in views), views
    assert views[0]["meta"]["note"] == "a  b\tc   d"


async def test_raw_utf8_metadata_round_trips_identically(clients, diff_bucket):
    """botocore refuses to send non-ASCII metadata (S3's REST rule); the lean pool and aiohttp
    send it as UTF-8, and all three read it back as the same text."""
    headers = {f"x-amz-meta-{k}": v for k, v in RAW_UTF8.items()}
    await clients.lean.request("PUT", diff_bucket, "lean", headers=headers, data=b"u")
    await clients.aio.request("PUT", diff_bucket, "aio", headers=headers, data=b"u")
    views = [view for key in ("lean", "aio") for view in await _head(clients, diff_bucket, key)]
    assert all(view == views[0] for view in views), views
    assert views[0]["meta"] == RAW_UTF8


async def test_an_object_that_looks_like_an_error_is_an_object(clients, diff_bucket):
    await clients.lean.request("PUT", diff_bucket, "error.xml", data=ERROR_LOOKALIKE)
    seen = await _get(clients, diff_bucket, "error.xml")
    assert [body for _, _, body in seen] == [ERROR_LOOKALIKE] * 3
    assert len({etag for _, etag, _ in seen}) == 1


async def test_100_continue_before_the_answer(clients, diff_bucket):
    """SeaweedFS (Go) sends `100 Continue` to a request with `Expect: 100-continue` before its
    final answer; botocore asks for it by itself above 1 MiB."""
    body = hashlib.sha256(b"continue").digest() * (2 * 1024 * 1024 // 32)
    expect = {"expect": "100-continue"}
    for name, http in (("lean", clients.lean), ("aio", clients.aio)):
        status, headers, _ = await http.request("PUT", diff_bucket, name, headers=expect, data=body)
        assert status == 200 and headers["ETag"].strip('"') == hashlib.md5(body).hexdigest()
    await clients.boto.put_object(Bucket=diff_bucket, Key="boto", Body=body)
    for key in ("lean", "aio", "boto"):
        assert {b for _, _, b in await _get(clients, diff_bucket, key)} == {body}


async def test_listings_of_awkward_keys_agree(clients, diff_bucket):
    for n, key in enumerate(KEYS):
        await clients.lean.request("PUT", diff_bucket, key, data=b"k" * n)
    listed = []
    for http in (clients.lean, clients.aio):
        query = {"list-type": "2", "max-keys": "1000"}
        _, _, body = await http.request("GET", diff_bucket, query=query)
        listed.append(
            sorted((e.key, e.size, e.etag) for e in parse_page(body, versions=False).entries)
        )
    answer = await clients.boto.list_objects_v2(Bucket=diff_bucket)
    listed.append(sorted((o["Key"], o["Size"], o["ETag"].strip('"')) for o in answer["Contents"]))
    assert listed[0] == listed[1] == listed[2]
    assert sorted(k for k, _, _ in listed[0]) == sorted(KEYS)


async def test_the_size_limit_holds_on_both_paths(clients, diff_bucket):
    """`max_body` (a small object read whole) refuses a larger answer, framed by length or
    chunked, and the connection it leaves is not reused half-read."""
    await clients.lean.request("PUT", diff_bucket, "big", data=b"b" * 5000)
    for http in (clients.lean, clients.aio):
        with pytest.raises(AnswerTooLarge):
            await http.request("GET", diff_bucket, "big", max_body=4096)
        _, _, body = await http.request("GET", diff_bucket, "big", max_body=5000)
        assert body == b"b" * 5000
