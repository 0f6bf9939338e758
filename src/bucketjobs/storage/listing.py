"""Streaming listings of a key range, and of incomplete multipart uploads.

A range is (start_after, last_key]: `start_after=None` is the bucket start, `last_key=None`
the end. Pages are yielded as they arrive; nothing holds more than one page.

Stores do not all list in plain byte order: SeaweedFS walks its directory tree, so `a/b`
comes before `a-1` there. A component's `listingOrder` (`lexicographic` or `hierarchical`)
says which, and range ends are compared in that order. A range also stops at the first key
of the next range (`next_key`), which holds whatever the order.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from bucketjobs.storage.lister import Entry, Page, S3Lister
from bucketjobs.storage.retry import with_retries

__all__ = ["Entry", "OrderError", "Scope", "Upload", "iter_range", "iter_uploads", "sort_key"]

LEXICOGRAPHIC = "lexicographic"
HIERARCHICAL = "hierarchical"


class OrderError(Exception):
    """The store listed keys out of the order configured for it: ranges would be wrong."""


DELIMITER = "/"


@dataclass(frozen=True, slots=True)
class Scope:
    """The listing a key range belongs to: keys under `prefix`, or with `delimited` only
    those directly under it (the objects beside a job's shard prefixes)."""

    prefix: str = ""
    delimited: bool = False


def _hierarchical(key: str) -> str:
    """Comparing keys part by part, as a walk of directories lists them, is comparing them
    with `/` below every other character (and one C-level replace is 5x cheaper than
    splitting into tuples: it runs on every listed key). S3 listings cannot carry U+0000."""
    return key.replace("/", "\x00")


def _lexicographic(key: str) -> str:
    return key


def sort_key(order: str) -> Callable[[str], Any]:
    return _hierarchical if order == HIERARCHICAL else _lexicographic


async def iter_range(
    lister: S3Lister,
    bucket: str,
    *,
    versions: bool,
    order: str,
    scope: Scope = Scope(),
    start_after: str | None = None,
    last_key: str | None = None,
    next_key: str | None = None,
    check_order: bool = False,
) -> AsyncIterator[list[Entry]]:
    """Pages of entries of `scope` with keys in (start_after, last_key], in the store's order.

    `check_order` (the planner's pass) verifies every key against `order` and raises
    OrderError on the first one out of place, rather than planning wrong ranges.
    """
    ordered = sort_key(order)
    bound = ordered(last_key) if last_key is not None else None
    previous = ordered(start_after) if check_order and start_after is not None else None

    delimiter = DELIMITER if scope.delimited else None

    def fetch(
        after: str | None, version_marker: str | None, token: str | None = None
    ) -> asyncio.Future[Page]:
        call = functools.partial(
            lister.page, bucket, versions=versions, prefix=scope.prefix, after=after,
            version_marker=version_marker, delimiter=delimiter, token=token,
        )  # fmt: skip
        return asyncio.ensure_future(with_retries(call))

    # The next page is requested as soon as this one is parsed, so the store works on it
    # while the caller acts on this one (and commits its partition).
    request: asyncio.Future[Page] | None = fetch(start_after, None)
    try:
        while request is not None:
            page = await request
            request = None
            entries = page.entries
            if check_order:
                for entry in entries:
                    current = ordered(entry.key)
                    if previous is not None and current < previous:
                        raise OrderError(
                            f"the store listed {entry.key!r} after a later key: its listing"
                            f" order is not {order!r} (set the component's listingOrder)"
                        )
                    previous = current
            end = len(entries)
            if bound is not None and entries:
                if ordered(entries[-1].key) > bound:  # the range ends on this page
                    end = next(
                        i
                        for i, e in enumerate(entries)
                        if e.key == next_key or ordered(e.key) > bound
                    )
                elif next_key is not None:  # a store listing out of its order stops here too
                    end = next((i for i, e in enumerate(entries) if e.key == next_key), end)
            complete = end < len(entries) or (
                not versions and bool(entries) and entries[-1].key == last_key
            )  # one entry per key without versions: the range's last key ends it
            if not complete and page.truncated:
                if page.token is not None:
                    request = fetch(None, None, page.token)
                elif page.next_key_marker is not None:
                    request = fetch(page.next_key_marker, page.next_version_marker)
            if end:
                yield entries[:end] if end < len(entries) else entries
    finally:
        if request is not None:
            request.cancel()


@dataclass(slots=True, frozen=True)
class Upload:
    key: str
    upload_id: str
    initiated: dt.datetime
    size: int  # 0 when not asked for


async def iter_uploads(
    client: Any, bucket: str, *, prefix: str = "", sizes: bool = True
) -> AsyncIterator[Upload]:
    """Incomplete multipart uploads, with the bytes of the parts uploaded so far when
    `sizes` (a ListParts per upload)."""
    key_marker: str | None = None
    upload_marker: str | None = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": bucket, "MaxUploads": 1000}
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
            while sizes:
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
