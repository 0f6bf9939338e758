"""How a job's key space is split into shards, so that its enumeration runs in parallel.

A listing is a chain: each page starts after the last key of the one before, so one
bucket's enumeration is as slow as its round trips in a row, however many workers wait
for partitions. Shards are independent listings, each with its own cursor, which the
planner runs side by side. They come in two kinds:

- **Key ranges** of the plain listing, for every unversioned bucket whatever its shape.
  The first page (1,000 keys, no delimiter) says where the keys start; probes of one key
  each (`max-keys=1`, sent together) find the first character position at which the keys
  beyond that page differ, then the first key of each subtree at that position (asked by
  prefix). Those keys split the listing into ranges of about one subtree each:
  `obj-00001…`, `obj-00002…` for numbered keys; `p01…`, `p02…` for prefixes `p000/` to
  `p099/`; `0…` to `f…` for hashes; `a1/`, `a2/` for a tree. A bucket that fits in one
  page is one shard, listed already.
- **Prefixes**, for versioned listings: the common prefixes ("directories") of one
  delimiter listing, one shard per top-level prefix, plus one for the objects directly
  beside them; one level is looked into when everything sits under a single prefix, and
  more than a page of top-level names is one shard.

Range bounds are always keys the store returned, never made-up strings: a store that lists
hierarchically (SeaweedFS) skips a whole directory when asked to start after its name, so
only a real key is a safe place to start or stop a listing (docs/DECISIONS.md).
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


LAST_CHAR = "\U0010ffff"  # sorts after every other character a key can hold


def level_probes(prefix: str, first: str, last: str) -> list[str]:
    """For each character position where the page's first and last keys agree, a string
    past every key that shares the page's characters up to and including that position:
    a key after it means the listing's keys differ at that position (or before).

    Not the next character's string (`obj-1` past `obj-0…`): SeaweedFS, asked to start
    after a directory's name, skips the directory, and the probe would miss its keys."""
    shared = common_prefix(first, last)
    positions = range(len(prefix), min(len(shared), len(prefix) + MAX_LEVEL_PROBES))
    return [shared[: i + 1] + LAST_CHAR for i in positions]


# Characters that may come where the page's keys have one of the class: a key space of
# numbered or lettered names uses the whole class, also what the first page did not reach.
_CLASSES = ("0123456789", "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def range_probes(prefix: str, keys: list[str], level: int) -> list[str]:
    """The subtrees at character position `level` after the first key's, as the prefixes
    that select them: the page's keys up to `level`, then each character that sorts after
    the first key's character there, of those the page uses past `prefix` and of the
    whole class (digits, lower or upper case letters) of each character the page has at
    `level` (at most MAX_RANGES of them)."""
    first = keys[0]
    base = first[:level]
    here = first[level] if level < len(first) else ""
    alphabet = {c for key in keys for c in key[len(prefix) :]}
    at_level = {key[level] for key in keys if len(key) > level}
    for members in _CLASSES:
        if not at_level.isdisjoint(members):
            alphabet.update(members)
    chars = sorted(c for c in alphabet if c > here)
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
    if versions:
        return await _prefixes(lister, bucket, prefix)
    call = functools.partial(lister.page, bucket, versions=False, prefix=prefix)
    page = await with_retries(call)
    if not page.entries:
        return [Shard(Scope(prefix))]
    if not page.truncated:  # listed whole: one shard, ending at its last key
        return [Shard(Scope(prefix), None, page.entries[-1].key, tuple(page.entries))]
    return await _key_ranges(lister, bucket, prefix, page.entries, order)


async def _prefixes(lister: S3Lister, bucket: str, prefix: str) -> list[Shard]:
    """Shards by the top-level prefixes under `prefix` (looking into a single one)."""
    for _ in range(MAX_DESCENT):
        call = functools.partial(
            lister.page, bucket, versions=True, prefix=prefix, delimiter=DELIMITER
        )
        scopes = shards_of(prefix, page := await with_retries(call))
        if scopes is not None:
            return [Shard(scope) for scope in scopes]
        prefix = page.prefixes[0]
    return [Shard(Scope(prefix))]


async def _key_ranges(
    lister: S3Lister, bucket: str, prefix: str, first: list[Entry], order: str
) -> list[Shard]:
    """Split the flat listing of `prefix`, whose first page was `first`, into key ranges."""
    keys = [e.key for e in first]

    async def first_of(*, after: str | None = None, under: str = prefix) -> Entry | None:
        """The first key after `after` (or from the start) of those that begin with `under`."""
        call = functools.partial(
            lister.page, bucket, versions=False, prefix=under, after=after, max_keys=1
        )
        page = await with_retries(call)
        return page.entries[0] if page.entries else None

    probes = level_probes(prefix, keys[0], keys[-1])
    found = await asyncio.gather(*(first_of(after=p) for p in probes))
    level = next((len(prefix) + n for n, entry in enumerate(found) if entry is not None), None)
    if level is None:  # every key shares the page's common prefix: they differ after it
        level = len(common_prefix(keys[0], keys[-1]))
    # The bounds are the first key of each subtree (asked by prefix, so a subtree that is a
    # directory is not skipped). With them, the first key after the page: when it is the
    # first bound (numbered keys whose first page ends where a subtree does), the first
    # shard is listed already.
    *bounds, following = await asyncio.gather(
        *(first_of(under=p) for p in range_probes(prefix, keys, level)),
        first_of(after=keys[-1]),
    )
    ordered = sort_key(order)
    listed_to = ordered(keys[-1])  # the first page is the first shard's beginning
    found_keys = {e.key for e in bounds if e is not None and ordered(e.key) > listed_to}
    distinct = sorted(found_keys, key=ordered)
    listed = tuple(first)
    if following is not None and distinct and following.key == distinct[0]:
        listed += (following,)
    return ranges_from(Scope(prefix), distinct, listed)
