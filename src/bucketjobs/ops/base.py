"""The protocol every job type implements; the engine knows nothing else about them.

- `validate` (at create): parameters beyond the common ones, already normalised.
- `prepare` (before planning): read what the job needs (configuration, destination) and
  return the plan every worker will see (at least `versions`: list versions or not).
- `act` (per partition): handle one page of listing entries, return counter deltas and a
  partition-level partial result.
- `finish` (once, after every partition): turn the summed partials into the job's result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bucketjobs.jobs.params import CommonParams
from bucketjobs.storage.lister import Entry


class JobFailed(Exception):
    """The job cannot go on; the message is shown to the operator as the job's `message`."""


@dataclass
class Delta:
    """Counters a partition adds to its job, committed atomically with the partition."""

    processed: int = 0
    failed: int = 0
    skipped: int = 0
    bytes: int = 0
    partial: dict[str, int] = field(default_factory=dict)

    def add(self, other: Delta) -> None:
        self.processed += other.processed
        self.failed += other.failed
        self.skipped += other.skipped
        self.bytes += other.bytes
        for key, value in other.partial.items():
            self.partial[key] = self.partial.get(key, 0) + value


@dataclass(frozen=True)
class JobContext:
    """What an op sees of its job: ids, bucket, parsed common params, raw params, a client."""

    job_id: int
    bucket: str
    params: Mapping[str, str]
    common: CommonParams
    client: Any


class Operation(Protocol):
    # True when `act` makes no storage request (it only reads the listing entries): the
    # planner may then act on its own enumeration pages instead of listing every range twice.
    pure: bool

    def count_entry(self, entry: Entry) -> bool:
        """Whether the planner counts this listing entry in `total`."""
        ...

    async def prepare(self, ctx: JobContext) -> dict[str, Any]: ...

    async def act(self, ctx: JobContext, entries: Sequence[Entry]) -> Delta: ...

    async def finish(
        self, ctx: JobContext, totals: Mapping[str, int], previous: Any
    ) -> dict[str, Any]:
        """The job's `result` from its partitions' partials summed by key (and, for
        METRIC_RECONCILIATION, what to store)."""
        ...
