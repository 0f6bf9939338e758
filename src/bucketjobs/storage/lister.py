"""A lean S3 listing client: ListObjectsV2 and ListObjectVersions pages as `Entry` objects.

Why hand-written: listing is the hot path of every job, and botocore spends most of a
listing's client time turning each XML page into dicts with typed fields (measured in
docs/PERFORMANCE.md). Here one signed GET (botocore's SigV4 signer, once per 1,000 keys)
goes out over aiohttp, and the page is parsed with the C ElementTree straight into
`Entry` objects. obstore lists faster still, but rewrites keys (it drops a trailing `/`)
and cannot list versions, so it cannot be the source of truth for exact work.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from yarl import URL

from bucketjobs.storage.components import Component
from bucketjobs.storage.retry import S3ResponseError

_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_CONTENTS, _VERSION, _MARKER = _NS + "Contents", _NS + "Version", _NS + "DeleteMarker"
_KEY, _VID, _LATEST, _SIZE, _ETAG, _MODIFIED = (
    _NS + name for name in ("Key", "VersionId", "IsLatest", "Size", "ETag", "LastModified")
)


@dataclass(slots=True, frozen=True)
class Entry:
    """One object version (or current object) or delete marker."""

    key: str
    version_id: str | None
    is_latest: bool
    size: int
    etag: str
    last_modified: dt.datetime
    delete_marker: bool


@dataclass(slots=True)
class Page:
    entries: list[Entry]
    truncated: bool
    next_key_marker: str | None = None
    next_version_marker: str | None = None


def normalize_etag(etag: str | None) -> str:
    """ETags compare without quotes (some stores return CopyObject ETags unquoted)."""
    return (etag or "").strip('"')


def _time(text: str | None) -> dt.datetime:
    return dt.datetime.fromisoformat(text) if text else dt.datetime.min.replace(tzinfo=dt.UTC)


def _entry(element: ET.Element, *, marker: bool, current_only: bool) -> Entry:
    fields = {child.tag: child.text for child in element}
    return Entry(
        key=fields.get(_KEY) or "",
        version_id=None if current_only else fields.get(_VID),
        is_latest=current_only or fields.get(_LATEST) == "true",
        size=int(fields.get(_SIZE) or 0),
        etag=normalize_etag(fields.get(_ETAG)),
        last_modified=_time(fields.get(_MODIFIED)),
        delete_marker=marker,
    )


def parse_page(body: bytes, *, versions: bool) -> Page:
    root = ET.fromstring(body)
    entries: list[Entry] = []
    for element in root:
        tag = element.tag
        if tag in (_CONTENTS, _VERSION):
            entries.append(_entry(element, marker=False, current_only=not versions))
        elif tag == _MARKER:
            entries.append(_entry(element, marker=True, current_only=False))
    truncated = root.findtext(_NS + "IsTruncated") == "true"
    if versions:
        return Page(
            entries,
            truncated,
            root.findtext(_NS + "NextKeyMarker"),
            root.findtext(_NS + "NextVersionIdMarker"),
        )
    return Page(entries, truncated, entries[-1].key if entries else None)


def _error(status: int, body: bytes) -> S3ResponseError:
    try:
        root = ET.fromstring(body)
        code = root.findtext("Code") or str(status)
        message = root.findtext("Message") or code
    except ET.ParseError:
        code, message = str(status), body[:200].decode("utf-8", "replace") or str(status)
    return S3ResponseError(code, message, status)


class S3Lister:
    """Signed listing requests to one component, over a shared connection pool."""

    def __init__(self, component: Component, max_connections: int = 64) -> None:
        self.endpoint = component.endpoint.rstrip("/")
        self._signer = S3SigV4Auth(
            Credentials(component.access_key, component.secret_key), "s3", component.region
        )
        timeout = aiohttp.ClientTimeout(
            sock_connect=float(component.config.get("connectionTimeout") or 10),
            sock_read=float(component.config.get("socketTimeout") or 60),
        )
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections), timeout=timeout
        )

    async def page(
        self,
        bucket: str,
        *,
        versions: bool,
        prefix: str = "",
        after: str | None = None,
        version_marker: str | None = None,
        max_keys: int = 1000,
    ) -> Page:
        """One page of keys after `after` (ListObjectsV2 start-after, or the version key
        marker), in the store's own order."""
        query: dict[str, str] = {"max-keys": str(max_keys)}
        if versions:
            query["versions"] = ""
            if after is not None:
                query["key-marker"] = after
                if version_marker:
                    query["version-id-marker"] = version_marker
        else:
            query["list-type"] = "2"
            if after is not None:
                query["start-after"] = after
        if prefix:
            query["prefix"] = prefix
        encoded = "&".join(
            f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
        )
        url = f"{self.endpoint}/{quote(bucket, safe='')}?{encoded}"
        request = AWSRequest(
            method="GET", url=url, headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
        )
        self._signer.add_auth(request)
        headers: dict[str, Any] = dict(request.headers.items())
        async with self._session.get(URL(url, encoded=True), headers=headers) as response:
            body = await response.read()
            if response.status != 200:
                raise _error(response.status, body)
        return parse_page(body, versions=versions)

    async def close(self) -> None:
        await self._session.close()
