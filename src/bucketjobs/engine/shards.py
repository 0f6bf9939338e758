"""How a job's key space is split into shards, so that its enumeration runs in parallel.

A listing is a chain: each page starts after the last key of the one before, so one
bucket's enumeration is as slow as its round trips in a row, however many workers wait
for partitions. The common prefixes ("directories") of one delimiter listing give
independent listings instead, each with its own cursor, which the planner runs side by
side: one shard per top-level prefix, plus one for the objects directly beside them.

Chosen at preparation from one page of that listing, so a small bucket pays one request:
- more than a page of top-level names (truncated): one shard (no cheap split to be had);
- no common prefix: one shard;
- exactly one common prefix and nothing beside it (`data/…`): look one level deeper;
- otherwise: a shard per common prefix, and a delimited one if objects sit beside them.
"""

from __future__ import annotations

import functools

from bucketjobs.storage.lister import Page, S3Lister
from bucketjobs.storage.listing import DELIMITER, Scope
from bucketjobs.storage.retry import with_retries

MAX_DESCENT = 4  # levels looked through when all keys sit under a single prefix


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


async def discover(lister: S3Lister, bucket: str, *, versions: bool, prefix: str) -> list[Scope]:
    """Read the top of the key space under `prefix` and choose its shards."""
    for _ in range(MAX_DESCENT):
        call = functools.partial(
            lister.page, bucket, versions=versions, prefix=prefix, delimiter=DELIMITER
        )
        page = await with_retries(call)
        shards = shards_of(prefix, page)
        if shards is not None:
            return shards
        prefix = page.prefixes[0]
    return [Scope(prefix)]
