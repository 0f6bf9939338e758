"""The protocol every job type implements; the engine knows nothing else about them.

An op sees its job as a `RunningJob`: ids, bucket, its typed parameters (jobs/params.py,
validated at create and rebuilt from the stored strings), its plan and its stores.

- `prepare` (once, before planning): read what the job needs (configuration, destination)
  and return the plan every worker will see (at least `versions`: list versions or not).
- `act` (per partition, on any worker): handle one page of listing entries; return a
  `Delta` — counters, a partition-level partial result, the objects that failed for good.
  The engine commits it with the partition, once.
- `finish` (once, after every partition): from the partials summed by key, return a
  `Completion`. The engine calls its `commit` inside the transaction that marks the job
  COMPLETE: the op's own effect (METRIC_RECONCILIATION stores the bucket's metrics) and
  the job's `result` commit together, or not at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from bucketjobs.jobs.params import CommonParams
from bucketjobs.notify.senders import Sender
from bucketjobs.notify.service import Target
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


AFFECTED_SAMPLE = 1000  # objects a dry run lists as affected: the first, in key order


@dataclass(frozen=True)
class Affected:
    """An object (version) a dry run would act on, for `jobs/affected`."""

    key: str
    version_id: str | None
    action: str
    rule: str
    size: int


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
    # A dry run's sample of what it would act on (at most AFFECTED_SAMPLE, first in key
    # order); the job keeps the first AFFECTED_SAMPLE of all its partitions'.
    affected: list[Affected] = field(default_factory=list)

    def add(self, other: Delta) -> None:
        self.processed += other.processed
        self.failed += other.failed
        self.skipped += other.skipped
        self.bytes += other.bytes
        for key, value in other.partial.items():
            self.partial[key] = self.partial.get(key, 0) + value
        self.failures.extend(other.failures)
        self.affected.extend(other.affected)


@dataclass(frozen=True)
class RunningJob:
    """What an op sees of its job: ids, bucket, typed params, its plan, and the stores.

    `source` is the store holding `bucket`; `store(id)` opens any other component (a
    replication destination) with this process's shared pools.
    """

    job_id: int
    bucket: str
    params: CommonParams
    plan: Mapping[str, Any]
    source: Store
    store: Callable[[int], Awaitable[Store]]
    source_job_id: int | None = None
    # The listing the entries handed to `act` come from (the job's prefix, or a shard's).
    scope: Scope = field(default_factory=Scope)
    # One of the job's in-flight request slots (`maxConcurrency`), held by every object
    # operation: a cancel aborts the operations that still hold one after a grace period.
    # Hold it in a task of the op's own (a lane), as BATCH_REPLICATE does: the abort then
    # ends that lane, and `act` still returns the Delta of what finished.
    slot: Callable[[], AbstractAsyncContextManager[Any]] = nullcontext
    # True once the job is cancelled: an op starts no further object operation, and returns
    # the Delta of those it finished (the engine commits it, so a cut-short page counts).
    stopping: Callable[[], bool] = field(default=lambda: False)
    # A notification target and its open sender, by id (TRIGGER_RECONCILIATION), and the
    # bindings of a bucket of the source component: read through the worker's runtime.
    sender: Callable[[int], Awaitable[tuple[Target, Sender]]] | None = None
    bindings: Callable[[int, str], Awaitable[list[Any]]] | None = None

    @property
    def client(self) -> Any:
        """The source's aiobotocore client."""
        return self.source.client


@dataclass(frozen=True)
class Completion:
    """What `finish` hands the engine: the job's result. An op with an effect of its own
    subclasses it and does that in `commit`."""

    result: dict[str, Any] = field(default_factory=dict)
    # Work the op did outside any partition (LIFECYCLE_UPDATE aborting uploads while it
    # prepared): added to the job's counters and failures in the completing transaction.
    counted: Delta | None = None

    async def commit(
        self, conn: AsyncConnection, job: RunningJob, now: dt.datetime
    ) -> dict[str, Any]:
        """Apply the op's effect within the completing transaction; return the result."""
        return self.result


class Operation(Protocol):
    # True when `act` makes no storage request (it only reads the listing entries): the
    # planner may then act on its own enumeration pages instead of listing every range twice.
    pure: bool
    # True when the planner should act on the pages it lists itself (the partition is done
    # as it is planned): for ops whose work needs nothing but the listed entries and costs
    # the store more than it costs us — counting, deleting — a second listing by a worker
    # would cost more than spreading the work saves. Copies are spread over workers.
    inline: bool
    # For an op whose work grows with objects' sizes (copies): the planner also ends a
    # partition at the first key where its objects reach this many bytes, so progress moves
    # and a crash repeats work per about this many bytes, not per 1,000 objects of any size.
    # None: partitions are cut by count only.
    partition_bytes: int | None

    def count_entry(self, entry: Entry) -> bool:
        """Whether the planner counts this listing entry in `total`."""
        ...

    async def prepare(self, job: RunningJob) -> dict[str, Any]: ...

    async def act(self, job: RunningJob, entries: Sequence[Entry], after: str | None) -> Delta:
        """Handle one listing page; `after` is the key its listing started after."""
        ...

    async def finish(self, job: RunningJob, totals: Mapping[str, int]) -> Completion:
        """The job's completion from its partitions' partials summed by key."""
        ...
