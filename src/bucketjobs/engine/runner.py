"""EXECUTING: run one partition — list its key range again and act on each page.

Counters are committed once, with the partition's done mark: a partition that runs twice
(crash, stalled worker) changes the job's counters once. A partition cut short by a cancel
commits what it did, so a cancelled job's counters match what it wrote.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

from sqlalchemy import select

from bucketjobs.db.models import job_partitions
from bucketjobs.engine import progress, queue
from bucketjobs.engine.runtime import WorkerRuntime
from bucketjobs.engine.step import load_step
from bucketjobs.jobs.model import JobState
from bucketjobs.ops.base import Delta, JobFailed
from bucketjobs.storage.listing import Scope
from bucketjobs.storage.retry import StorageError


async def run_partition(runtime: WorkerRuntime, job_id: int, seq: int) -> None:
    async with runtime.db.begin() as conn:
        job = await progress.load_job(conn, job_id)
        if job is None or job.state not in progress.ACTIVE:
            return
        part = (
            await conn.execute(
                select(job_partitions).where(
                    job_partitions.c.job_id == job_id, job_partitions.c.seq == seq
                )
            )
        ).first()
        if part is None or part.done:
            return
        await progress.advance(conn, runtime.clock, job_id, JobState.EXECUTING)

    step = await load_step(runtime, job)
    op = step.op
    # Rows planned before shards existed have no prefix: they list the job's own.
    scope = Scope(step.job.scope.prefix if part.prefix is None else part.prefix, part.delimited)
    running = replace(step.job, scope=scope)
    limits = runtime.limits(job_id, step.job.params)
    delta = Delta()
    try:
        # A pure op makes one request at a time (the listing): the partition takes a slot.
        # Other ops take a slot per object operation (RunningJob.slot).
        async with limits.listing() if op.pure else contextlib.nullcontext():
            after = part.start_after
            pages = step.pages(scope, part.start_after, part.last_key, part.next_key)
            async for page in pages:
                await limits.operations(len(page))
                if runtime.stopping(job_id):
                    break  # cancelled: commit what was done, below
                delta.add(await op.act(running, page, after))
                after = page[-1].key
    except (StorageError, JobFailed) as exc:
        if not runtime.stopping(job_id):
            await progress.fail_job(runtime.db, runtime.clock, job_id, f"partition {seq}: {exc}")
            return

    # Committed even when the job was cancelled meanwhile: a partition cut short by a
    # cancel counts the object operations it finished (SPEC §3, jobs/cancel).
    try:
        async with runtime.db.begin() as conn:
            after = await progress.commit_partition(
                conn, runtime.clock, job_id, seq, delta, runtime.worker_name
            )
            if after is None or after.state not in progress.ACTIVE:
                return
            threshold = step.job.params.failure_threshold
            if await progress.fail_if_past_threshold(conn, runtime.clock, job_id, after, threshold):
                return
            if after.enum_done and after.partitions_done == after.partitions_planned:
                await queue.enqueue_finish(conn, job_id)
    except progress.JobEnded:
        return
