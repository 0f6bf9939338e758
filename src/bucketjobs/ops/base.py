"""The protocol every job type implements; the engine knows nothing else about them.

- `validate` (at create): parameters beyond the common ones, already normalised.
- `prepare` (before planning): read what the job needs (configuration, destination) and
  return the plan every worker will see (at least `versions`: list versions or not).
- `act` (per partition): handle one page of listing entries, return counter deltas, a
  partition-level partial result and the objects that failed permanently.
- `finish` (once, after every partition): turn the summed partials into the job's result.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

from bucketjobs.jobs.params import CommonParams
from bucketjobs.storage.lister import Entry
from bucketjobs.storage.listing import Scope
from bucketjobs.storage.store import Store


class JobFailed(Exception):
    """The job cannot go on; the message is shown to the operator as the job's `message`."""


@dataclass(frozen=True)
class Failure:
    """One object that failed permanently (or ran out of retries), for `jobs/failures`."""

    key: str
    version_id: str | None
    error_code: str
    http_status: int | None
    message: str
    attempts: int
    time: dt.datetime


@dataclass
class Delta:
    """What a partition adds to its job, committed atomically with the partition: counters,
    partial results summed at the end, and the failures recorded in the same batch."""

    processed: int = 0
    failed: int = 0
    skipped: int = 0
    bytes: int = 0
    partial: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)

    def add(self, other: Delta) -> None:
        self.processed += other.processed
        self.failed += other.failed
        self.skipped += other.skipped
        self.bytes += other.bytes
        for key, value in other.partial.items():
            self.partial[key] = self.partial.get(key, 0) + value
        self.failures.extend(other.failures)


@dataclass(frozen=True)
class JobContext:
    """What an op sees of its job: ids, bucket, params, its plan, and the stores.

    `source` is the store holding `bucket`; `store(id)` opens any other component (a
    replication destination) with this process's shared pools.
    """

    job_id: int
    bucket: str
    params: Mapping[str, str]
    common: CommonParams
    plan: Mapping[str, Any]
    source: Store
    store: Callable[[int], Awaitable[Store]]
    source_job_id: int | None = None
    # The listing the entries handed to `act` come from (the job's prefix, or a shard's).
    scope: Scope = field(default_factory=Scope)
    # One of the job's in-flight request slots (`maxConcurrency`), for ops that make requests.
    slot: Callable[[], AbstractAsyncContextManager[Any]] = nullcontext

    @property
    def client(self) -> Any:
        """The source's aiobotocore client."""
        return self.source.client


class Operation(Protocol):
    # True when `act` makes no storage request (it only reads the listing entries): the
    # planner may then act on its own enumeration pages instead of listing every range twice.
    pure: bool

    def count_entry(self, entry: Entry) -> bool:
        """Whether the planner counts this listing entry in `total`."""
        ...

    async def prepare(self, ctx: JobContext) -> dict[str, Any]: ...

    async def act(self, ctx: JobContext, entries: Sequence[Entry], after: str | None) -> Delta:
        """Handle one listing page; `after` is the key its listing started after."""
        ...

    async def finish(
        self, ctx: JobContext, totals: Mapping[str, int], previous: Any
    ) -> dict[str, Any]:
        """The job's `result` from its partitions' partials summed by key (and, for
        METRIC_RECONCILIATION, what to store)."""
        ...
