"""Build what a step needs from a job row: the op's `RunningJob` and where its keys come from.

A job's keys come from a listing of its bucket, except for a re-run of another job's
failures (a job with a `source_job_id`, e.g. BATCH_REPLICATE's FAILED filter), whose keys
come from the failures that job recorded (in byte order, so the same key-range partitions
work for both).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from bucketjobs.db.models import job_failures
from bucketjobs.engine.runtime import WorkerRuntime
from bucketjobs.jobs import params
from bucketjobs.jobs.model import JobType
from bucketjobs.ops.base import Operation, RunningJob
from bucketjobs.ops.registry import OPERATIONS
from bucketjobs.storage.lister import Entry
from bucketjobs.storage.listing import Scope, iter_range

FAILED_KEYS_PAGE = 1000


@dataclass(frozen=True)
class Step:
    """One job as a step of the engine sees it: its row, the op that runs it and the
    op's view of it, and this process's runtime."""

    row: Any
    op: Operation
    job: RunningJob
    runtime: WorkerRuntime

    @property
    def versions(self) -> bool:
        return bool((self.row.plan or {}).get("versions", True))

    def pages(
        self,
        scope: Scope,
        start_after: str | None,
        last_key: str | None = None,
        next_key: str | None = None,
        *,
        check_order: bool = False,
    ) -> AsyncIterator[list[Entry]]:
        """Pages of the job's entries in `scope` with keys in (start_after, last_key]."""
        if self.job.source_job_id is not None:
            return self._failed_keys(start_after, last_key)
        return iter_range(
            self.job.source.lister,
            self.job.bucket,
            versions=self.versions,
            order=self.job.source.order,
            scope=scope,
            start_after=start_after,
            last_key=last_key,
            next_key=next_key,
            check_order=check_order,
        )

    async def _failed_keys(
        self, start_after: str | None, last_key: str | None
    ) -> AsyncIterator[list[Entry]]:
        """The distinct keys the source job failed on, in byte order; sizes are unknown."""
        key = job_failures.c.key.collate("C")
        after = start_after
        prefix = self.job.params.prefix
        while True:
            query = (
                select(key.label("key"))
                .distinct()
                .where(job_failures.c.job_id == self.job.source_job_id)
            )
            if prefix:
                query = query.where(func.starts_with(job_failures.c.key, prefix))
            if after is not None:
                query = query.where(key > after)
            if last_key is not None:
                query = query.where(key <= last_key)
            query = query.order_by(key).limit(FAILED_KEYS_PAGE)
            async with self.runtime.db.connect() as conn:
                keys = (await conn.execute(query)).scalars().all()
            if not keys:
                return
            yield [Entry.unlisted(k) for k in keys]
            if len(keys) < FAILED_KEYS_PAGE:
                return
            after = keys[-1]


async def load_step(runtime: WorkerRuntime, row: Any) -> Step:
    job_type = JobType(row.job_type)
    typed = params.parse(job_type, row.params)
    job = RunningJob(
        job_id=row.id,
        bucket=row.bucket_name,
        params=typed,
        plan=dict(row.plan or {}),
        source=await runtime.store(row.component_id),
        store=runtime.store,
        source_job_id=row.source_job_id,
        scope=Scope(typed.prefix),
        slot=runtime.limits(row.id, typed).slot,
        stopping=functools.partial(runtime.stopping, row.id),
        sender=runtime.sender,
        bindings=runtime.notifications.bindings,
    )
    return Step(row, OPERATIONS[job_type], job, runtime)
