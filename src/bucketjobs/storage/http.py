"""Signed S3 requests: the fast path for listing and object operations.

Not through botocore: for small objects a job's cost is the per-request client work, and
botocore's request pipeline (parameter validation, event hooks, XML models) is most of it;
aiobotocore remains for rare calls (configuration reads, multipart upload listings).
Requests whose bodies fit in memory go over a lean HTTP/1.1 pool (storage/http1.py),
streamed bodies either way over aiohttp; each keeps its own connections to the component.
"""

from __future__ import annotations

import contextlib
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from urllib.parse import quote

import aiohttp
from yarl import URL

from bucketjobs.metrics import STORAGE_SECONDS, operation
from bucketjobs.storage.components import Component
from bucketjobs.storage.errors import AnswerTooLarge, S3Error
from bucketjobs.storage.http1 import Http1Pool
from bucketjobs.storage.retry import classify
from bucketjobs.storage.sigv4 import SigV4Signer

_SAFE = "-_.~"


def encode_key(key: str) -> str:
    """URI-encode an object key for a path (slashes kept), as SigV4 for S3 expects."""
    return quote(key, safe="/" + _SAFE)


def encode_query(query: Mapping[str, str]) -> str:
    return "&".join(
        f"{quote(k, safe=_SAFE)}={quote(v, safe=_SAFE)}" for k, v in sorted(query.items())
    )


def error_from(status: int, body: bytes) -> S3Error:
    """An S3 error answer → S3Error with its code (or the status when bodiless).

    Only an S3 `<Error>` document's Code and Message are kept, shortened and printable; any
    other body (a web server's page, whatever answered at that address) is dropped, so no
    foreign bytes reach an API answer or a job's message.
    """
    fallback = {404: "NotFound", 403: "AccessDenied"}.get(status, str(status))
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        root = None
    if root is None or root.tag != "Error":
        return S3Error(fallback, f"HTTP {status} (not an S3 error answer)", status)
    code = _printable(root.findtext("Code") or "", 64) or fallback
    return S3Error(code, _printable(root.findtext("Message") or "", 200) or code, status)


def _printable(text: str, limit: int) -> str:
    return "".join(c if c.isprintable() else " " for c in text[:limit]).strip()


def _is_error_document(body: bytes) -> bool:
    """A 200 answer that is really an error: CopyObject, UploadPartCopy and
    CompleteMultipartUpload may fail after the status line is sent. The root element is
    `<Error>` (after an optional XML declaration); an object's bytes are never looked at."""
    head = body[:512].lstrip()
    if head.startswith(b"<?xml"):
        head = head[head.find(b"?>") + 2 :].lstrip()
    return head.startswith(b"<Error>")


class S3Http:
    """Signed requests to one component's endpoint (path-style addressing).

    `lean=False` sends in-memory bodies over aiohttp too: the differential test's second
    client, and the way back should the lean pool ever meet an endpoint it cannot serve.
    """

    def __init__(
        self, component: Component, max_connections: int = 64, *, lean: bool = True
    ) -> None:
        location = component.location
        self.endpoint = location.url
        self._host = location.host_header
        self._signer = SigV4Signer(component.access_key, component.secret_key, component.region)
        limit = int(component.config.get("maxConnections") or max_connections)
        connect_timeout = float(component.config.get("connectionTimeout") or 10)
        read_timeout = float(component.config.get("socketTimeout") or 60)
        tls = component.tls
        self._lean = lean
        self._pool = Http1Pool(
            location.host, location.port, limit, tls=tls, server_hostname=location.host,
            connect_timeout=connect_timeout, read_timeout=read_timeout,
        )  # fmt: skip
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=limit, ttl_dns_cache=300, ssl=tls if tls is not None else False
            ),
            timeout=aiohttp.ClientTimeout(sock_connect=connect_timeout, sock_read=read_timeout),
            cookie_jar=aiohttp.DummyCookieJar(),  # S3 sets no cookies; skip the jar's work
            auto_decompress=False,  # objects are copied byte for byte, Content-Encoding kept
            skip_auto_headers=("Content-Type",),
        )

    def _prepare(
        self,
        method: str,
        bucket: str,
        key: str | None,
        query: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[str, dict[str, str]]:
        """The encoded request target (path and query) and the signed headers, Host
        included: the same string is signed and sent, on either path."""
        path = f"/{quote(bucket, safe='')}" if bucket else "/"
        if key is not None:
            path += "/" + encode_key(key)
        encoded = encode_query(query) if query else ""
        signed = self._signer.sign(
            method, self._host, path, encoded, {k.lower(): v for k, v in (headers or {}).items()}
        )
        signed["host"] = self._host
        return path + (f"?{encoded}" if encoded else ""), signed

    def _url(self, target: str) -> URL:
        return URL(self.endpoint + target, encoded=True)

    async def request(
        self,
        method: str,
        bucket: str,
        key: str | None = None,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        data: bytes | AsyncIterable[bytes] | None = None,
        ok: tuple[int, ...] = (200,),
        max_body: int | None = None,
        error_in_200: bool = False,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One request, its answer read whole (answers here are small XML, empty, or a
        small object: above `max_body` bytes, AnswerTooLarge and nothing is read).

        Raises S3Error on a status outside `ok`, and with `error_in_200` (CopyObject,
        UploadPartCopy, CompleteMultipartUpload) on a 200 whose document is an `<Error>`.
        A body from bytes is sent with its own length; a streamed body needs the caller's
        `content-length` (S3 takes no chunked uploads).
        """
        if data is None or isinstance(data, bytes):
            headers = {k: v for k, v in (headers or {}).items() if k.lower() != "content-length"}
        target, signed = self._prepare(method, bucket, key, query, headers)
        answer_headers: Mapping[str, str]
        started, status = time.perf_counter(), 0
        try:
            if self._lean and (data is None or isinstance(data, bytes)):
                status, answer_headers, body = await self._pool.request(
                    method, target, signed, data or b"", max_body=max_body
                )
            else:
                status, answer_headers, body = await self._aiohttp(
                    method, target, signed, data, max_body
                )
        finally:
            STORAGE_SECONDS.labels(operation(method, key, query, headers), str(status)).observe(
                time.perf_counter() - started
            )
        if status not in ok or (error_in_200 and status == 200 and _is_error_document(body)):
            raise error_from(status, body)
        return status, answer_headers, body

    async def _aiohttp(
        self,
        method: str,
        target: str,
        signed: dict[str, str],
        data: bytes | AsyncIterable[bytes] | None,
        max_body: int | None,
    ) -> tuple[int, Mapping[str, str], bytes]:
        try:
            async with self._session.request(
                method, self._url(target), headers=signed, data=data
            ) as response:
                length = response.content_length
                if max_body is not None and length is not None and length > max_body:
                    raise AnswerTooLarge(length, max_body)
                if max_body is None:
                    body = await response.read()
                else:  # a chunked answer announces no length: count as it comes
                    chunks, size = [], 0
                    async for chunk in response.content.iter_chunked(65536):
                        size += len(chunk)
                        if size > max_body:
                            raise AnswerTooLarge(size, max_body)
                        chunks.append(chunk)
                    body = b"".join(chunks)
                return response.status, response.headers, body
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise classify(exc) from exc

    @contextlib.asynccontextmanager
    async def stream(
        self, bucket: str, key: str, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET an object and hand back the open response, to be read in chunks."""
        target, signed = self._prepare("GET", bucket, key, None, headers)
        try:
            async with self._session.get(self._url(target), headers=signed) as response:
                if response.status not in (200, 206):
                    raise error_from(response.status, await response.read())
                yield response
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise classify(exc) from exc

    async def close(self) -> None:
        await self._pool.close()
        await self._session.close()
