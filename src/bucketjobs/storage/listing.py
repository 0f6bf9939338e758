"""Streaming listings of a key range: object versions, delete markers and uploads.

A range is (start_after, last_key]: `start_after=None` is the bucket start, `last_key=None`
the end. Pages are yielded as they arrive; nothing holds more than one page.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from bucketjobs.storage.retry import with_retries

PAGE_SIZE = 1000  # AWS caps pages at 1,000: never rely on more.


@dataclass(slots=True, frozen=True)
class Entry:
    """One object version or delete marker."""

    key: str
    version_id: str | None
    is_latest: bool
    size: int
    etag: str
    last_modified: dt.datetime
    delete_marker: bool


def normalize_etag(etag: str | None) -> str:
    """ETags compare without quotes (some stores return CopyObject ETags unquoted)."""
    return (etag or "").strip('"')


def _entries(page: dict[str, Any]) -> list[Entry]:
    out = [
        Entry(
            v["Key"], v.get("VersionId"), bool(v.get("IsLatest")), int(v.get("Size", 0)),
            normalize_etag(v.get("ETag")), v["LastModified"], False,
        )
        for v in page.get("Versions", ())
    ] + [
        Entry(m["Key"], m.get("VersionId"), bool(m.get("IsLatest")), 0, "", m["LastModified"], True)
        for m in page.get("DeleteMarkers", ())
    ]  # fmt: skip
    out.sort(key=lambda e: e.key)  # stable: versions of one key keep their order
    return out


async def iter_versions(
    client: Any,
    bucket: str,
    *,
    prefix: str = "",
    start_after: str | None = None,
    last_key: str | None = None,
    page_size: int = PAGE_SIZE,
) -> AsyncIterator[list[Entry]]:
    """Pages of versions and delete markers with keys in (start_after, last_key]."""
    key_marker, version_marker = start_after, None
    while True:
        kwargs: dict[str, Any] = {"Bucket": bucket, "MaxKeys": page_size}
        if prefix:
            kwargs["Prefix"] = prefix
        if key_marker is not None:
            kwargs["KeyMarker"] = key_marker
            if version_marker:
                kwargs["VersionIdMarker"] = version_marker
        page: dict[str, Any] = await with_retries(
            functools.partial(client.list_object_versions, **kwargs)
        )
        entries = _entries(page)
        if last_key is not None and entries and entries[-1].key > last_key:
            yield [e for e in entries if e.key <= last_key]
            return
        if entries:
            yield entries
        if not page.get("IsTruncated"):
            return
        key_marker, version_marker = page.get("NextKeyMarker"), page.get("NextVersionIdMarker")
        if key_marker is None:
            return


@dataclass(slots=True, frozen=True)
class Upload:
    key: str
    upload_id: str
    initiated: dt.datetime
    size: int


async def iter_uploads(client: Any, bucket: str, *, prefix: str = "") -> AsyncIterator[Upload]:
    """Incomplete multipart uploads with the bytes of the parts uploaded so far."""
    key_marker: str | None = None
    upload_marker: str | None = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": bucket, "MaxUploads": PAGE_SIZE}
        if prefix:
            kwargs["Prefix"] = prefix
        if key_marker:
            kwargs.update(KeyMarker=key_marker, UploadIdMarker=upload_marker or "")
        page: dict[str, Any] = await with_retries(
            functools.partial(client.list_multipart_uploads, **kwargs)
        )
        for upload in page.get("Uploads", ()):
            size = 0
            part_marker = 0
            while True:
                parts: dict[str, Any] = await with_retries(
                    functools.partial(
                        client.list_parts,
                        Bucket=bucket,
                        Key=upload["Key"],
                        UploadId=upload["UploadId"],
                        PartNumberMarker=part_marker,
                    )
                )
                size += sum(int(p.get("Size", 0)) for p in parts.get("Parts", ()))
                if not parts.get("IsTruncated"):
                    break
                part_marker = int(parts["NextPartNumberMarker"])
            yield Upload(upload["Key"], upload["UploadId"], upload["Initiated"], size)
        if not page.get("IsTruncated"):
            return
        key_marker, upload_marker = page.get("NextKeyMarker"), page.get("NextUploadIdMarker")
