"""Copying one object with everything S3 keeps beside its bytes.

Within one store the copy is server-side: CopyObject (metadata and tags copied by the
store), or UploadPartCopy parts above CopyObject's 5 GiB limit. Across stores the bytes
stream from the source's GET into the destination's PUT — or, above a threshold, into
multipart UploadPart requests of `part_size`, each read by its own ranged GET as it is
sent: the process never holds more than a read buffer of an object.

The parts of a multipart copy are retried one by one. Retrying the whole object instead
fails a large one for good: each of its thousands of parts must then succeed in the same
attempt, and every attempt starts over from the first byte.

Kept: the bytes, Content-Type, Content-Encoding, Content-Disposition, Content-Language,
Cache-Control, Expires, every `x-amz-meta-*` header, and the tag set.
"""

from __future__ import annotations

import contextlib
import functools
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from bucketjobs.storage.errors import AnswerTooLarge, ProtocolError, S3Error, StorageError
from bucketjobs.storage.http import S3Http, encode_key
from bucketjobs.storage.retry import with_retries
from bucketjobs.storage.tagging import parse_tags

MiB = 1024 * 1024
GiB = 1024 * MiB
COPY_OBJECT_LIMIT = 5 * GiB  # the largest object CopyObject (and a single PUT) accepts
COPY_PART_SIZE = 512 * MiB
STREAM_THRESHOLD = 16 * MiB  # cross-store: multipart above this size
STREAM_PART_SIZE = 8 * MiB
SMALL_OBJECT = 256 * 1024  # read whole: one buffer is cheaper than a streamed body
MAX_PARTS = 10_000  # S3's limit on the parts of one upload
MAX_PART = 5 * GiB  # and on one part's size


def part_size_for(size: int, preferred: int) -> int:
    """`preferred`, or more for an object that would otherwise need more than MAX_PARTS
    parts: the smallest whole number of MiB that fits it in 10,000 (S3's largest object,
    5 TiB, takes 525 MiB parts)."""
    needed = -(-size // MAX_PARTS)
    if needed <= preferred:
        return preferred
    return min(MAX_PART, -(-needed // MiB) * MiB)


STANDARD_HEADERS = (
    "content-type",
    "content-encoding",
    "content-disposition",
    "content-language",
    "cache-control",
    "expires",
)


def carried_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers of a source object that its copy must carry."""
    kept: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in STANDARD_HEADERS or lower.startswith("x-amz-meta-"):
            kept[lower] = value
    return kept


def copy_source(bucket: str, key: str) -> str:
    return f"{quote(bucket, safe='')}/{encode_key(key)}"


async def tagging_header(http: S3Http, bucket: str, key: str, headers: Mapping[str, str]) -> str:
    """The source's tags as an `x-amz-tagging` value. S3 sends `x-amz-tagging-count` only
    for an object that has tags: without it there is nothing to read (one request saved
    per object, most objects have no tags)."""
    count = next((v for k, v in headers.items() if k.lower() == "x-amz-tagging-count"), None)
    if not count or int(count) == 0:
        return ""
    _, _, body = await http.request("GET", bucket, key, query={"tagging": ""})
    return urlencode(parse_tags(body), quote_via=quote)


def _upload_id(body: bytes) -> str:
    for element in ET.fromstring(body).iter():
        if element.tag.rsplit("}", 1)[-1] == "UploadId" and element.text:
            return element.text
    raise ValueError("CreateMultipartUpload answered without an UploadId")


def _etag_of(body: bytes) -> str:
    for element in ET.fromstring(body).iter():
        if element.tag.rsplit("}", 1)[-1] == "ETag" and element.text:
            return element.text
    raise ValueError("UploadPartCopy answered without an ETag")


def _complete_body(etags: list[str]) -> bytes:
    parts = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
        for n, etag in enumerate(etags, 1)
    )
    return f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()


class _Multipart:
    """One multipart upload, aborted unless completed."""

    def __init__(self, http: S3Http, bucket: str, key: str) -> None:
        self.http, self.bucket, self.key = http, bucket, key
        self.upload_id = ""
        self.etags: list[str] = []

    async def __aenter__(self) -> _Multipart:
        return self

    async def start(self, headers: Mapping[str, str]) -> None:
        _, _, body = await self.http.request(
            "POST", self.bucket, self.key, query={"uploads": ""}, headers=headers
        )
        self.upload_id = _upload_id(body)

    async def part(
        self, headers: Mapping[str, str], data: Any = None, *, error_in_200: bool = False
    ) -> str:
        query = {"partNumber": str(len(self.etags) + 1), "uploadId": self.upload_id}
        _, answer_headers, body = await self.http.request(
            "PUT", self.bucket, self.key, query=query, headers=headers, data=data,
            error_in_200=error_in_200,
        )  # fmt: skip
        etag = answer_headers.get("ETag") or _etag_of(body)
        self.etags.append(etag)
        return etag

    async def complete(self) -> None:
        await self.http.request(
            "POST", self.bucket, self.key, query={"uploadId": self.upload_id},
            data=_complete_body(self.etags), headers={"content-type": "application/xml"},
            error_in_200=True,
        )  # fmt: skip
        self.upload_id = ""

    async def __aexit__(self, *exc: object) -> None:
        if self.upload_id:
            query = {"uploadId": self.upload_id}
            # The copy's own error is the one to report; a leftover upload is only litter.
            with contextlib.suppress(Exception):
                await self.http.request("DELETE", self.bucket, self.key, query=query, ok=(204, 200))


async def server_side_copy(
    http: S3Http,
    src_bucket: str,
    src_key: str,
    dst_bucket: str,
    dst_key: str,
    size: int,
    *,
    limit: int = COPY_OBJECT_LIMIT,
    part_size: int = COPY_PART_SIZE,
) -> None:
    """Copy within one store: the bytes never leave it."""
    source = {"x-amz-copy-source": copy_source(src_bucket, src_key)}
    if size <= limit:
        # The store copies metadata and tags itself (directives default to COPY).
        await http.request("PUT", dst_bucket, dst_key, headers=source, error_in_200=True)
        return
    _, head, _ = await http.request("HEAD", src_bucket, src_key)
    headers = await _copied_headers(http, src_bucket, src_key, head)
    size = int(head.get("Content-Length", size))  # the version copied, not the one listed
    version = _Version(http, src_bucket, src_key, head.get("ETag", ""))
    await version.copy(http, dst_bucket, dst_key, headers, size, part_size, server_side=True)


async def _take(stream: Any, count: int) -> AsyncIterator[bytes]:
    """Exactly `count` bytes of a response body, chunk by chunk."""
    while count > 0:
        chunk = await stream.read(min(count, MiB))
        if not chunk:
            raise ProtocolError("the source object ended before its Content-Length")
        count -= len(chunk)
        yield chunk


async def streamed_copy(
    src: S3Http,
    dst: S3Http,
    src_bucket: str,
    src_key: str,
    dst_bucket: str,
    dst_key: str,
    *,
    size_hint: int | None = None,
    threshold: int = STREAM_THRESHOLD,
    part_size: int = STREAM_PART_SIZE,
) -> int:
    """Copy between stores through this process; returns the bytes copied. `size_hint`
    (the listed size) lets a small object be read whole in one buffered GET."""
    if size_hint is not None and size_hint <= SMALL_OBJECT:
        try:
            _, head, body = await src.request("GET", src_bucket, src_key, max_body=SMALL_OBJECT)
        except AnswerTooLarge:
            pass  # it grew since it was listed: stream it below
        else:
            headers = await _copied_headers(src, src_bucket, src_key, head)
            await dst.request("PUT", dst_bucket, dst_key, headers=headers, data=body)
            return len(body)
    in_parts: _Version | None = None
    async with src.stream(src_bucket, src_key) as response:
        headers = await _copied_headers(src, src_bucket, src_key, response.headers)
        length = response.headers.get("Content-Length")
        if length is None:  # a chunked answer: the size is known at its end only
            return await _copy_unsized(dst, dst_bucket, dst_key, headers, response.content,
                                       part_size_for(size_hint or 0, part_size))  # fmt: skip
        size = int(length)
        if size <= SMALL_OBJECT:
            body = await response.read()  # and the source connection goes back to its pool
        elif size <= threshold:
            headers["content-length"] = str(size)
            await dst.request(
                "PUT", dst_bucket, dst_key, headers=headers, data=_take(response.content, size)
            )
            return size
        else:  # in parts, each read by its own range: this answer's body is left unread
            in_parts = _Version(src, src_bucket, src_key, response.headers.get("ETag", ""))
    if in_parts is not None:
        await in_parts.copy(dst, dst_bucket, dst_key, headers, size, part_size)
        return size
    await dst.request("PUT", dst_bucket, dst_key, headers=headers, data=body)
    return size


class SourceChanged(StorageError):
    """The source object was replaced while it was being copied in parts: the copy starts
    over from the new one (transient), rather than join parts of two versions."""

    transient = True


class _Version:
    """One version of a source object, named by its ETag. Every part of a multipart copy
    is read from that version (If-Match), so a source replaced mid-copy ends the copy with
    SourceChanged instead of joining parts of two objects."""

    def __init__(self, http: S3Http, bucket: str, key: str, etag: str) -> None:
        self.http, self.bucket, self.key, self.etag = http, bucket, key, etag

    async def copy(
        self, dst: S3Http, bucket: str, key: str, headers: Mapping[str, str], size: int,
        part_size: int, *, server_side: bool = False,
    ) -> None:  # fmt: skip
        """Copy the version's `size` bytes to `key`, one part at a time: by the store
        itself (`server_side`, UploadPartCopy), else read by range and sent through here."""
        part_size = part_size_for(size, part_size)
        send = self._copy_part if server_side else self._send_part
        async with _Multipart(dst, bucket, key) as upload:
            await with_retries(functools.partial(upload.start, headers))
            for start in range(0, size, part_size):
                part = functools.partial(send, upload, start, min(part_size, size - start))
                await with_retries(part, not_here=(SourceChanged,))
            await upload.complete()

    async def _copy_part(self, upload: _Multipart, start: int, length: int) -> None:
        headers = {
            "x-amz-copy-source": copy_source(self.bucket, self.key),
            "x-amz-copy-source-range": f"bytes={start}-{start + length - 1}",
        }
        if self.etag:
            headers["x-amz-copy-source-if-match"] = self.etag
        with _source_changed_on_412():
            await upload.part(headers, error_in_200=True)

    async def _send_part(self, upload: _Multipart, start: int, length: int) -> None:
        span = {"range": f"bytes={start}-{start + length - 1}"}
        if self.etag:
            span["if-match"] = self.etag
        with _source_changed_on_412():
            async with self.http.stream(self.bucket, self.key, span) as answer:
                if answer.status != 206:  # the whole object: it would be sent as this part
                    raise StorageError("RangeIgnored", "the source answered a ranged GET whole")
                await upload.part({"content-length": str(length)}, _take(answer.content, length))


@contextlib.contextmanager
def _source_changed_on_412() -> Iterator[None]:
    try:
        yield
    except S3Error as exc:
        if exc.http_status != 412:
            raise
        message = "the source object changed during the copy"
        raise SourceChanged("SourceChanged", message, 412) from exc


async def _read_up_to(stream: Any, count: int) -> bytes:
    """Up to `count` bytes of a body: fewer only at its end."""
    chunks: list[bytes] = []
    while count > 0:
        chunk = await stream.read(min(count, MiB))
        if not chunk:
            break
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


async def _copy_unsized(
    dst: S3Http, bucket: str, key: str, headers: dict[str, str], stream: Any, part_size: int
) -> int:
    """Copy a body of unknown length: one PUT if it ends within a part, else multipart
    with each part read whole before it is sent (S3 needs every part's length up front, so
    this path holds one part, never the object)."""
    part = await _read_up_to(stream, part_size)
    if len(part) < part_size:
        await dst.request("PUT", bucket, key, headers=headers, data=part)
        return len(part)
    size = 0
    async with _Multipart(dst, bucket, key) as upload:
        await upload.start(headers)
        while part:
            await upload.part({}, part)
            size += len(part)
            part = await _read_up_to(stream, part_size)
        await upload.complete()
    return size


async def _copied_headers(
    http: S3Http, bucket: str, key: str, head: Mapping[str, str]
) -> dict[str, str]:
    """What a copy written through this process must carry: headers, metadata, tags."""
    headers = carried_headers(head)
    tagging = await tagging_header(http, bucket, key, head)
    if tagging:
        headers["x-amz-tagging"] = tagging
    return headers
