"""Deleting objects and versions in batches: DeleteObjects, up to 1,000 per request.

Quiet mode: the store answers only the keys it could not delete, each with S3's error code.
A key XML 1.0 cannot carry (control characters other than tab and newlines are legal in S3
keys, not in XML documents) is deleted on its own with a plain DELETE instead.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import html
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from bucketjobs.storage.errors import TRANSIENT_CODES, S3Error
from bucketjobs.storage.http import S3Http
from bucketjobs.storage.retry import with_retries

MAX_KEYS = 1000  # S3's limit per DeleteObjects request
GONE = frozenset({"NoSuchKey", "NoSuchVersion"})  # already deleted: the goal is reached

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_CR = {"\r": "&#13;"}  # a literal CR would reach the store's XML parser as a newline
_ERROR = re.compile(rb"<Error>(.*?)</Error>", re.S)
_FIELD = re.compile(rb"<(Key|VersionId|Code|Message)>([^<]*)</\1>")


@dataclass(frozen=True, slots=True)
class Target:
    """A key (its current version: a delete marker where the bucket is versioned), or one
    version of it, deleted for good."""

    key: str
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteError:
    target: Target
    code: str
    message: str
    http_status: int | None = None


def delete_document(targets: Sequence[Target]) -> bytes:
    parts = ["<Delete><Quiet>true</Quiet>"]
    for target in targets:
        parts.append(f"<Object><Key>{escape(target.key, _CR)}</Key>")
        if target.version_id is not None:
            parts.append(f"<VersionId>{escape(target.version_id)}</VersionId>")
        parts.append("</Object>")
    parts.append("</Delete>")
    return "".join(parts).encode()


def parse_errors(body: bytes) -> list[tuple[Target, str, str]]:
    """A DeleteObjects answer's per-key errors: (target, code, message)."""
    found = []
    for block in _ERROR.findall(body):
        fields = {
            tag.decode(): html.unescape(value.decode()) for tag, value in _FIELD.findall(block)
        }
        target = Target(fields.get("Key", ""), fields.get("VersionId") or None)
        found.append((target, fields.get("Code", ""), fields.get("Message", "")))
    return found


async def _delete_once(http: S3Http, bucket: str, targets: Sequence[Target]) -> list[DeleteError]:
    alone = [t for t in targets if _NOT_XML.search(t.key)]
    batch = [t for t in targets if not _NOT_XML.search(t.key)]
    errors: list[DeleteError] = []
    if batch:
        document = delete_document(batch)
        md5 = base64.b64encode(hashlib.md5(document).digest()).decode()
        call = functools.partial(
            http.request, "POST", bucket, query={"delete": ""}, data=document,
            headers={"content-md5": md5, "content-type": "application/xml"},
        )  # fmt: skip
        _, _, body = await with_retries(call)
        errors += [
            DeleteError(target, code, message)
            for target, code, message in parse_errors(body)
            if code not in GONE
        ]
    for target in alone:
        query = {"versionId": target.version_id} if target.version_id is not None else None
        call = functools.partial(
            http.request, "DELETE", bucket, target.key, query=query, ok=(200, 204, 404)
        )
        try:
            await with_retries(call)
        except S3Error as exc:
            errors.append(DeleteError(target, exc.code, exc.message, exc.http_status))
    return errors


async def delete_batch(
    http: S3Http, bucket: str, targets: Sequence[Target], *, attempts: int = 6
) -> list[DeleteError]:
    """Delete up to MAX_KEYS targets; returns those the store refused for good (a target
    already gone is not refused). Keys refused for a transient reason are sent again, and
    only they: a key sent twice without a version would get two delete markers. Raises
    StorageError when the request itself keeps failing."""
    if len(targets) > MAX_KEYS:
        raise ValueError(f"at most {MAX_KEYS} targets per request")
    pending, final = list(targets), []
    for attempt in range(1, attempts + 1):
        errors = await _delete_once(http, bucket, pending)
        again = [e for e in errors if e.code in TRANSIENT_CODES and attempt < attempts]
        final += [e for e in errors if e not in again]
        if not again:
            break
        pending = [e.target for e in again]
        await asyncio.sleep(random.uniform(0, 0.05 * 2**attempt))
    return final
