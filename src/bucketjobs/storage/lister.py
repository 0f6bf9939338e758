"""A lean S3 listing client: ListObjectsV2 and ListObjectVersions pages as `Entry` objects.

Why hand-written: listing is the hot path of every job, and botocore spends most of a
listing's client time turning each XML page into dicts with typed fields (measured in
docs/PERFORMANCE.md). Here one signed GET per 1,000 keys goes out over the component's
pool (storage/http.py), and the page is scanned once with a regular expression straight
into `Entry` objects. obstore lists faster still, but rewrites keys (it drops a trailing `/`)
and cannot list versions, so it cannot be the source of truth for exact work.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from bucketjobs.storage.http import S3Http

# One pass over the page picks out, in document order, the tags an entry is made of.
# S3 escapes `<` in text, so `[^<]*` is exactly an element's text.
_TAGS = re.compile(
    rb"<(Contents|Version|DeleteMarker|Key|VersionId|IsLatest|Size|ETag|LastModified"
    rb"|IsTruncated|NextKeyMarker|NextVersionIdMarker|NextContinuationToken|CommonPrefixes"
    rb"|Prefix)>([^<]*)"
)
_BLOCKS = frozenset({b"Contents", b"Version", b"DeleteMarker"})
_TOP = frozenset(
    {b"IsTruncated", b"NextKeyMarker", b"NextVersionIdMarker", b"NextContinuationToken"}
)


class Entry(NamedTuple):
    """One object version (or current object) or delete marker.

    A tuple, not a dataclass: a page makes a thousand of these, and a frozen dataclass costs
    several times more to build. `modified` stays the store's text until someone asks.
    """

    key: str
    version_id: str | None
    is_latest: bool
    size: int | None  # None: known by key only, not from a listing (Entry.unlisted)
    etag: str
    modified: str
    delete_marker: bool

    @classmethod
    def unlisted(cls, key: str) -> Entry:
        """The current version of `key`, nothing else known (a re-run of failed keys)."""
        return cls(key, None, True, None, "", "", False)

    @property
    def last_modified(self) -> dt.datetime:
        if not self.modified:
            return dt.datetime.min.replace(tzinfo=dt.UTC)
        return dt.datetime.fromisoformat(self.modified)


@dataclass(slots=True)
class Page:
    entries: list[Entry]
    truncated: bool
    next_key_marker: str | None = None
    next_version_marker: str | None = None
    # With a delimiter: the common prefixes ("directories") on this page, and the V2
    # continuation token (a start-after key cannot resume past a common prefix).
    prefixes: list[str] = field(default_factory=list)
    token: str | None = None


def _text(raw: bytes) -> str:
    text = raw.decode()
    return html.unescape(text) if "&" in text else text


def _etag(raw: bytes) -> str:
    """ETags are hex (and `-N`): only their quotes, escaped or not, need removing."""
    return raw.replace(b"&#34;", b"").replace(b"&quot;", b"").strip(b'"').decode()


def _entry(fields: dict[bytes, bytes], kind: bytes, versions: bool) -> Entry:
    get = fields.get
    version_id = get(b"VersionId") if versions else None
    return Entry(
        _text(get(b"Key", b"")),
        _text(version_id) if version_id is not None else None,
        not versions or get(b"IsLatest") == b"true",
        int(get(b"Size") or 0),
        _etag(get(b"ETag", b"")),
        get(b"LastModified", b"").decode(),
        kind == b"DeleteMarker",
    )


_FIRST_CONTENTS = re.compile(rb"<Contents>(.*?)</Contents>", re.S)
_LEAF = re.compile(rb"<([A-Za-z]+)>[^<]*</\1>")
_WANTED = (b"Key", b"ETag", b"Size", b"LastModified")


# Inside a learned pattern, an ETag's quotes (escaped or not) are matched around the
# capture, so the captured text is the ETag itself; anything else in it fails the match.
_ETAG_TEXT = rb'(?:&#34;|&quot;|")?([^<&"]*)(?:&#34;|&quot;|")?'


@functools.lru_cache(maxsize=8)
def _contents_pattern(skeleton: bytes) -> tuple[re.Pattern[str], tuple[int, ...]] | None:
    """A pattern matching a whole `<Contents>` block laid out as `skeleton` (the first
    block's tags, texts removed), capturing the wanted fields; with where each one is
    among the captures. None if the layout lacks one of them."""
    order: list[bytes] = []

    def leaf(match: re.Match[bytes]) -> bytes:
        tag = match.group(1)
        if tag in _WANTED and tag not in order:
            order.append(tag)
            text = _ETAG_TEXT if tag == b"ETag" else rb"([^<]*)"
            return b"<" + tag + b">" + text + b"</" + tag + b">"
        return b"<" + tag + b">[^<]*</" + tag + b">"

    pattern = _LEAF.sub(leaf, re.escape(skeleton))  # re.escape leaves tags as they are
    if len(order) != len(_WANTED):
        return None
    return re.compile((b"<Contents>" + pattern + b"</Contents>").decode()), tuple(
        order.index(tag) for tag in _WANTED
    )


def _fast_v2_entries(body: bytes) -> list[Entry] | None:
    """A ListObjectsV2 page's entries in one C-level scan of the page decoded once, when
    every `<Contents>` block is laid out like the first (a store writes them all alike:
    SeaweedFS and AWS in two different orders). None when they are not, or the page has
    common prefixes: the general scan then reads it. 5x cheaper per entry than the
    general scan (docs/PERFORMANCE.md)."""
    first = _FIRST_CONTENTS.search(body)
    if first is None or b"<CommonPrefixes>" in body:
        return None
    learned = _contents_pattern(_LEAF.sub(rb"<\1></\1>", first.group(1)))
    if learned is None:
        return None
    pattern, (k, e, s, m) = learned
    found = pattern.findall(body.decode())
    if len(found) != body.count(b"<Contents>"):
        return None
    unescape, new = html.unescape, tuple.__new__  # tuple.__new__: skips NamedTuple's own
    return [
        new(Entry, (unescape(f[k]) if "&" in f[k] else f[k], None, True, int(f[s] or 0),
                    f[e], f[m], False))
        for f in found
    ]  # fmt: skip


def parse_page(body: bytes, *, versions: bool) -> Page:
    """ListObjectsV2 / ListVersionsResult XML → entries, in document order.

    A regular expression instead of an XML tree: building ElementTree elements for a page
    of 1,000 keys costs ~7 ms against ~1.5 ms for this single scan (docs/PERFORMANCE.md).
    """
    if not versions:
        fast = _fast_v2_entries(body)
        if fast is not None:
            return _v2_page(body, fast)
    entries: list[Entry] = []
    prefixes: list[str] = []
    top: dict[bytes, bytes] = {}
    fields: dict[bytes, bytes] = {}
    kind = b""
    for tag, value in _TAGS.findall(body):
        if tag in _BLOCKS or tag == b"CommonPrefixes":
            if kind in _BLOCKS:
                entries.append(_entry(fields, kind, versions))
            fields, kind = {}, tag
        elif kind == b"CommonPrefixes" and tag == b"Prefix":
            prefixes.append(_text(value))
        elif kind in _BLOCKS and tag not in _TOP:
            fields[tag] = value
        else:
            top[tag] = value
    if kind in _BLOCKS:
        entries.append(_entry(fields, kind, versions))
    truncated = top.get(b"IsTruncated") == b"true"
    if versions:
        key_marker = top.get(b"NextKeyMarker")
        version_marker = top.get(b"NextVersionIdMarker")
        return Page(
            entries,
            truncated,
            _text(key_marker) if key_marker else None,
            _text(version_marker) if version_marker else None,
            prefixes,
        )
    token = top.get(b"NextContinuationToken")
    return Page(
        entries,
        truncated,
        entries[-1].key if entries else None,
        None,
        prefixes,
        _text(token) if token else None,
    )


class S3Lister:
    """Listing pages of one component, over its signed-request pool."""

    def __init__(self, http: S3Http) -> None:
        self.http = http

    async def page(
        self,
        bucket: str,
        *,
        versions: bool,
        prefix: str = "",
        after: str | None = None,
        version_marker: str | None = None,
        max_keys: int = 1000,
        delimiter: str | None = None,
        token: str | None = None,
    ) -> Page:
        """One page of keys after `after` (ListObjectsV2 start-after, or the version key
        marker), in the store's own order; with `delimiter`, keys below it are rolled up
        into `Page.prefixes`, and `token` continues a truncated V2 listing."""
        query: dict[str, str] = {"max-keys": str(max_keys)}
        if delimiter:
            query["delimiter"] = delimiter
        if versions:
            query["versions"] = ""
            if after is not None:
                query["key-marker"] = after
                if version_marker:
                    query["version-id-marker"] = version_marker
        else:
            query["list-type"] = "2"
            if token is not None:
                query["continuation-token"] = token
            elif after is not None:
                query["start-after"] = after
        if prefix:
            query["prefix"] = prefix
        _, _, body = await self.http.request("GET", bucket, query=query)
        return parse_page(body, versions=versions)


_TRUNCATED = re.compile(rb"<IsTruncated>([^<]*)</IsTruncated>")
_TOKEN = re.compile(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>")


def _v2_page(body: bytes, entries: list[Entry]) -> Page:
    """The page around entries read by the fast scan (no common prefixes on it)."""
    truncated = _TRUNCATED.search(body)
    token = _TOKEN.search(body, body.rfind(b"</Contents>") + 1)
    return Page(
        entries,
        truncated is not None and truncated.group(1) == b"true",
        entries[-1].key if entries else None,
        None,
        [],
        _text(token.group(1)) if token else None,
    )
