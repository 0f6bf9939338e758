"""EXAMINING: prepare the job, then enumerate the bucket into key-range partitions.

The listing is streamed and cut into partitions of about PARTITION_ENTRIES entries. Cut
partitions are written every FLUSH_SECONDS, each batch with its tasks and the enumeration
cursor in one transaction, so a restart resumes after the last partition written and never
plans a key twice or skips one.

For a pure operation (one that only reads listing entries, like counting) the planner acts
on the pages it just listed and commits the partition as done in that same transaction:
the job then costs one listing instead of two. A partition task is queued instead when the
worker runs with `inline=False`, which spreads even pure jobs over every worker.
"""

from __future__ import annotations

import time

from bucketjobs.engine import progress, queue
from bucketjobs.engine.context import EngineContext
from bucketjobs.engine.finisher import finish_job
from bucketjobs.engine.jobctx import Step, load_step
from bucketjobs.jobs.model import JobType
from bucketjobs.ops.base import JobFailed
from bucketjobs.ops.registry import OPERATIONS
from bucketjobs.storage.listing import Entry, OrderError
from bucketjobs.storage.retry import StorageError

PARTITION_ENTRIES = 1000


def split_at_key_boundary(entries: list[Entry]) -> int:
    """Index where the entries of the last key begin: a cut never splits one key's versions."""
    last = entries[-1].key
    index = len(entries)
    while index > 0 and entries[index - 1].key == last:
        index -= 1
    return index


async def plan(ctx: EngineContext, job_id: int, partition_entries: int = PARTITION_ENTRIES) -> None:
    async with ctx.db.connect() as conn:
        job = await progress.load_job(conn, job_id)
    if job is None or job.state not in progress.ACTIVE or job.enum_done:
        return
    step = await load_step(ctx, job)
    try:
        if job.plan is None:
            prepared = await OPERATIONS[JobType(job.job_type)].prepare(step.op)
            async with ctx.db.begin() as conn:
                if not await progress.set_plan(conn, ctx.clock, job_id, prepared):
                    return
                job = await progress.load_job(conn, job_id)
            step = await load_step(ctx, job)
        await _enumerate(ctx, step, partition_entries)
    except (JobFailed, OrderError) as exc:
        await progress.fail_job(ctx.db, ctx.clock, job_id, str(exc))
    except StorageError as exc:
        message = f"listing bucket {job.bucket_name!r} failed: {exc}"
        await progress.fail_job(ctx.db, ctx.clock, job_id, message)


FLUSH_SECONDS = 0.25  # planned partitions are written at most this long after they are cut


async def _enumerate(ctx: EngineContext, step: Step, partition_entries: int) -> None:
    job = step.job
    job_id = job.id
    op = OPERATIONS[JobType(job.job_type)]
    inline = ctx.inline and op.pure
    limits = ctx.limits(job_id, step.op.common)
    seq = job.partitions_planned
    cursor: str | None = job.enum_cursor
    pending: list[Entry] = []  # listed, not yet in a partition
    cut: list[progress.Planned] = []  # partitions not yet written
    flushed_at = 0.0

    async def flush() -> bool:
        """Write the cut partitions (done, or with their tasks) in one transaction."""
        nonlocal seq, flushed_at
        if not cut:
            return True
        try:
            async with ctx.db.begin() as conn:
                if not await progress.add_partitions(
                    conn, ctx.clock, job_id, seq, cut, ctx.worker_name
                ):
                    return False
                if not inline:
                    await queue.enqueue_partitions(conn, job_id, range(seq, seq + len(cut)))
        except progress.JobEnded:
            return False
        seq += len(cut)
        cut.clear()
        flushed_at = time.monotonic()
        return True

    async def add(last_key: str | None, next_key: str | None, part: list[Entry]) -> None:
        nonlocal cursor
        selected = sum(1 for e in part if op.count_entry(e))
        delta = await op.act(step.op, part, cursor) if inline else None
        cut.append(progress.Planned(cursor, last_key, next_key, len(part), selected, delta))
        cursor = last_key

    async for page in step.pages(cursor, check_order=True):
        if inline:
            await limits.operations(len(page))
        if job_id in ctx.cancelled:
            return
        pending.extend(page)
        if len(pending) >= partition_entries:
            boundary = split_at_key_boundary(pending)
            if boundary > 0:
                await add(pending[boundary - 1].key, pending[boundary].key, pending[:boundary])
                pending = pending[boundary:]
        if cut and time.monotonic() - flushed_at >= FLUSH_SECONDS and not await flush():
            return
    if pending:
        await add(None, None, pending)
    if not await flush():
        return
    async with ctx.db.begin() as conn:
        after = await progress.mark_enumerated(conn, ctx.clock, job_id)
        finished = after is not None and after.partitions_done == after.partitions_planned
        if finished and not inline:
            await queue.enqueue_finish(conn, job_id)
    if finished and inline:
        # Every partition is done here and now: finish without a round trip through the
        # queue (a crash before the end leaves it to the recovery sweep).
        await finish_job(ctx, job_id)
