"""EXECUTING: run one partition — list its key range again and act on each page.

Counters are committed once, with the partition's done mark: a partition that runs twice
(crash, stalled worker) changes the job's counters once.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

from sqlalchemy import select

from bucketjobs.db.models import job_partitions
from bucketjobs.engine import progress, queue
from bucketjobs.engine.context import EngineContext
from bucketjobs.engine.jobctx import load_step
from bucketjobs.jobs.model import JobState, JobType
from bucketjobs.ops.base import Delta, JobFailed
from bucketjobs.ops.registry import OPERATIONS
from bucketjobs.storage.listing import Scope
from bucketjobs.storage.retry import StorageError


async def run_partition(ctx: EngineContext, job_id: int, seq: int) -> None:
    async with ctx.db.begin() as conn:
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
        await progress.advance(conn, ctx.clock, job_id, JobState.EXECUTING)

    op = OPERATIONS[JobType(job.job_type)]
    step = await load_step(ctx, job)
    # Rows planned before shards existed have no prefix: they list the job's own.
    scope = Scope(step.op.scope.prefix if part.prefix is None else part.prefix, part.delimited)
    op_ctx = replace(step.op, scope=scope)
    limits = ctx.limits(job_id, step.op.common)
    delta = Delta()
    try:
        # A pure op makes one request at a time (the listing): the partition takes a slot.
        # Other ops take a slot per request they make (JobContext.slot).
        async with limits.slot() if op.pure else contextlib.nullcontext():
            after = part.start_after
            pages = step.pages(scope, part.start_after, part.last_key, part.next_key)
            async for page in pages:
                await limits.operations(len(page))
                if job_id in ctx.cancelled:
                    return
                delta.add(await op.act(op_ctx, page, after))
                after = page[-1].key
    except (StorageError, JobFailed) as exc:
        await progress.fail_job(ctx.db, ctx.clock, job_id, f"partition {seq}: {exc}")
        return

    try:
        async with ctx.db.begin() as conn:
            after = await progress.commit_partition(
                conn, ctx.clock, job_id, seq, delta, ctx.worker_name
            )
            if after is None:
                return
            threshold = step.op.common.failure_threshold
            if progress.threshold_crossed(after, threshold, final=False):
                await progress.finish(
                    conn, ctx.clock, job_id, JobState.FAILED,
                    message=f"{after.failed} of {after.processed + after.failed} objects failed,"
                    f" more than the failureThreshold of {threshold:g}%",
                )  # fmt: skip
            elif after.enum_done and after.partitions_done == after.partitions_planned:
                await queue.enqueue_finish(conn, job_id)
    except progress.JobEnded:
        return
