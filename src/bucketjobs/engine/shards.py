"""How a job's key space is split into shards, so that its enumeration runs in parallel.

A listing is a chain: each page starts after the last key of the one before, so one
bucket's enumeration is as slow as its round trips in a row, however many workers wait
for partitions. Shards are independent listings, each with its own cursor, which the
planner runs side by side. They come in two kinds:

- **Prefixes.** The common prefixes ("directories") of one delimiter listing: one shard per
  top-level prefix, plus one for the objects directly beside them. Chosen from one page
  of that listing, so a small bucket pays one request:
  - more than a page of top-level names (truncated): one shard (no cheap split to be had);
  - no common prefix: one shard, which may then be split into key ranges (below);
  - exactly one common prefix and nothing beside it (`data/…`): look one level deeper;
  - otherwise: a shard per common prefix, and a delimited one if objects sit beside them.
- **Key ranges** of one flat listing (no prefixes to split on: `obj-000000001`, hashes,
  everything under one prefix). The first page says where its keys start; probes of one
  key each (`max-keys=1`, sent together) find the first character position at which the
  keys beyond that page differ, then the first key after each character seen at that
  position. Those keys split the listing into ranges of about one subtree each
  (`obj-00000…`, `obj-00001…`, … for numbered keys; `0…` to `f…` for hashes).

Range bounds are always keys the store returned, never made-up strings: a store that lists
hierarchically (SeaweedFS) skips a whole directory when asked to start after its name, so
only a real key is a safe place to start or stop a listing (docs/DECISIONS.md).
Versioned listings are not split into ranges (their shards are prefixes only).
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass

from bucketjobs.storage.lister import Entry, Page, S3Lister
from bucketjobs.storage.listing import DELIMITER, Scope, sort_key
from bucketjobs.storage.retry import with_retries

MAX_DESCENT = 4  # levels looked through when all keys sit under a single prefix
MAX_LEVEL_PROBES = 32  # character positions probed to find where keys differ
MAX_RANGES = 64  # key ranges one flat listing is split into, at most


@dataclass(frozen=True, slots=True)
class Shard:
    """One listing of the job (`scope`), from after `start_after` to `last_key` included
    (None: from its start, to its end). `listed`: its first entries, read while choosing
    the shards, so the planner need not list them again (not stored: a planner that starts
    over lists them)."""

    scope: Scope
    start_after: str | None = None
    last_key: str | None = None
    listed: tuple[Entry, ...] = ()


def shards_of(prefix: str, page: Page) -> list[Scope] | None:
    """The shards for one delimiter page of `prefix`, or None to look inside its only prefix."""
    if page.truncated or not page.prefixes:
        return [Scope(prefix)]
    if len(page.prefixes) == 1 and not page.entries:
        return None
    shards = [Scope(p) for p in page.prefixes]
    if page.entries:
        shards.append(Scope(prefix, delimited=True))
    return shards


def common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def level_probes(prefix: str, first: str, last: str) -> list[str]:
    """For each character position where the page's first and last keys agree, the string
    just past every key sharing the page's characters up to that position: a key after it
    means the listing's keys differ at that position (or before)."""
    shared = common_prefix(first, last)
    positions = range(len(prefix), min(len(shared), len(prefix) + MAX_LEVEL_PROBES))
    return [shared[:i] + after for i in positions if (after := _next_char(shared[i]))]


def _next_char(c: str) -> str:
    """The character after `c`, or "" when there is none a key can hold."""
    code = ord(c) + 1
    if 0xD800 <= code <= 0xDFFF:  # surrogates are not characters
        code = 0xE000
    return chr(code) if code <= 0x10FFFF else ""


def range_probes(prefix: str, keys: list[str], level: int) -> list[str]:
    """Strings before each subtree at character position `level`, after the first key's:
    the page's keys up to `level`, then each character the page uses past `prefix` that
    sorts after the first key's character there (at most MAX_RANGES of them)."""
    first = keys[0]
    base = first[:level]
    here = first[level] if level < len(first) else ""
    alphabet = sorted({c for key in keys for c in key[len(prefix) :]} - {""})
    chars = [c for c in alphabet if c > here]
    if len(chars) > MAX_RANGES:
        step = len(chars) / MAX_RANGES
        chars = [chars[int(i * step)] for i in range(MAX_RANGES)]
    return [base + c for c in chars]


def ranges_from(scope: Scope, bounds: list[str], listed: tuple[Entry, ...] = ()) -> list[Shard]:
    """Shards of `scope` split after each of `bounds` (sorted, distinct keys, after every
    key but the last of `listed`, the listing's first entries, which go to the first
    shard; a `listed` that ends on the first bound is that shard whole)."""
    starts = [None, *bounds]
    ends: list[str | None] = [*bounds, None]
    shards = [Shard(scope, start, end) for start, end in zip(starts, ends, strict=True)]
    shards[0] = Shard(scope, None, ends[0], listed)
    return shards


async def discover(
    lister: S3Lister, bucket: str, *, versions: bool, prefix: str, order: str
) -> list[Shard]:
    """Read the top of the key space under `prefix` and choose its shards."""
    for _ in range(MAX_DESCENT):
        call = functools.partial(
            lister.page, bucket, versions=versions, prefix=prefix, delimiter=DELIMITER
        )
        page = await with_retries(call)
        scopes = shards_of(prefix, page)
        if scopes is not None:
            break
        prefix = page.prefixes[0]
    else:
        return [Shard(Scope(prefix))]
    if versions or len(scopes) > 1 or not page.truncated or page.prefixes or not page.entries:
        return [Shard(scope) for scope in scopes]
    return await _key_ranges(lister, bucket, prefix, page.entries, order)


async def _key_ranges(
    lister: S3Lister, bucket: str, prefix: str, first: list[Entry], order: str
) -> list[Shard]:
    """Split the flat listing of `prefix`, whose first page was `first`, into key ranges."""
    keys = [e.key for e in first]

    async def first_after(after: str) -> Entry | None:
        call = functools.partial(
            lister.page, bucket, versions=False, prefix=prefix, after=after, max_keys=1
        )
        page = await with_retries(call)
        return page.entries[0] if page.entries else None

    probes = level_probes(prefix, keys[0], keys[-1])
    found = await asyncio.gather(*(first_after(p) for p in probes))
    level = next((len(prefix) + n for n, entry in enumerate(found) if entry is not None), None)
    if level is None:  # every key shares the page's common prefix: they differ after it
        level = len(common_prefix(keys[0], keys[-1]))
    # With the bounds, the first key after the page: when it is the first bound (numbered
    # keys whose first page ends where a subtree does), the first shard is listed already.
    *bounds, following = await asyncio.gather(
        *(first_after(p) for p in range_probes(prefix, keys, level)), first_after(keys[-1])
    )
    ordered = sort_key(order)
    listed_to = ordered(keys[-1])  # the first page is the first shard's beginning
    found_keys = {e.key for e in bounds if e is not None and ordered(e.key) > listed_to}
    distinct = sorted(found_keys, key=ordered)
    listed = tuple(first)
    if following is not None and distinct and following.key == distinct[0]:
        listed += (following,)
    return ranges_from(Scope(prefix), distinct, listed)
