"""Signed S3 requests: the fast path for listing and object operations.

Not through botocore: for small objects a job's cost is the per-request client work, and
botocore's request pipeline (parameter validation, event hooks, XML models) is most of it;
aiobotocore remains for rare calls (configuration reads, multipart upload listings).
Requests whose bodies fit in memory go over a lean HTTP/1.1 pool (storage/http1.py),
streamed bodies either way over aiohttp; each keeps its own connections to the component.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from urllib.parse import quote

import aiohttp
from yarl import URL

from bucketjobs.storage.components import Component
from bucketjobs.storage.http1 import Http1Pool
from bucketjobs.storage.retry import S3ResponseError
from bucketjobs.storage.sigv4 import SigV4Signer

_SAFE = "-_.~"


def encode_key(key: str) -> str:
    """URI-encode an object key for a path (slashes kept), as SigV4 for S3 expects."""
    return quote(key, safe="/" + _SAFE)


def encode_query(query: Mapping[str, str]) -> str:
    return "&".join(
        f"{quote(k, safe=_SAFE)}={quote(v, safe=_SAFE)}" for k, v in sorted(query.items())
    )


def error_from(status: int, body: bytes) -> S3ResponseError:
    """An S3 error answer → S3ResponseError with its code (or the status when bodiless)."""
    try:
        root = ET.fromstring(body)
        code = root.findtext("Code") or str(status)
        message = root.findtext("Message") or code
    except ET.ParseError:
        code = {404: "NotFound", 403: "AccessDenied"}.get(status, str(status))
        message = body[:200].decode("utf-8", "replace") or code
    return S3ResponseError(code, message, status)


class S3Http:
    """Signed requests to one component's endpoint (path-style addressing)."""

    def __init__(self, component: Component, max_connections: int = 64) -> None:
        self.endpoint = component.endpoint.rstrip("/")
        self._host = self.endpoint.split("://", 1)[1]
        self._signer = SigV4Signer(component.access_key, component.secret_key, component.region)
        limit = int(component.config.get("maxConnections") or max_connections)
        timeout = aiohttp.ClientTimeout(
            sock_connect=float(component.config.get("connectionTimeout") or 10),
            sock_read=float(component.config.get("socketTimeout") or 60),
        )
        scheme, location = self.endpoint.split("://", 1)
        host, _, port = location.rpartition(":")
        self._pool = Http1Pool(
            scheme, host.strip("[]"), int(port), limit,
            connect_timeout=timeout.sock_connect or 10, read_timeout=timeout.sock_read or 60,
        )  # fmt: skip
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, ttl_dns_cache=300),
            timeout=timeout,
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
        """The encoded request target (path and query) and the signed headers."""
        path = f"/{quote(bucket, safe='')}"
        if key is not None:
            path += "/" + encode_key(key)
        encoded = encode_query(query) if query else ""
        signed = self._signer.sign(
            method, self._host, path, encoded, {k.lower(): v for k, v in (headers or {}).items()}
        )
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
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One request, its answer read whole (answers here are small XML, empty, or a
        small object: above `max_body` bytes, http1.BodyTooLarge and nothing is read);
        raises S3ResponseError on a status outside `ok` — and on a 200 carrying an error,
        which CopyObject and CompleteMultipartUpload may send."""
        target, signed = self._prepare(method, bucket, key, query, headers)
        answer_headers: Mapping[str, str]
        if data is None or isinstance(data, bytes):
            signed["host"] = self._host
            status, answer_headers, body = await self._pool.request(
                method, target, signed, data or b"", max_body=max_body
            )
        else:
            url = self._url(target)
            async with self._session.request(method, url, headers=signed, data=data) as response:
                status, answer_headers, body = (
                    response.status, response.headers, await response.read()
                )  # fmt: skip
        if status not in ok or (status == 200 and b"<Error>" in body[:256]):
            raise error_from(status, body)
        return status, answer_headers, body

    @contextlib.asynccontextmanager
    async def stream(
        self, bucket: str, key: str, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET an object and hand back the open response, to be read in chunks."""
        target, signed = self._prepare("GET", bucket, key, None, headers)
        async with self._session.get(self._url(target), headers=signed) as response:
            if response.status not in (200, 206):
                raise error_from(response.status, await response.read())
            yield response

    async def close(self) -> None:
        await self._pool.close()
        await self._session.close()
