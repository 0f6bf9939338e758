"""EXAMINING: prepare the job, then enumerate the bucket into key-range partitions.

The listing is streamed; each partition (about PARTITION_ENTRIES entries) is written with
its task and the enumeration cursor in one transaction, so a restart resumes after the last
partition written and never plans a key twice or skips one.

For a pure operation (one that only reads listing entries, like counting) the planner acts
on the pages it just listed and commits the partition as done in that same transaction:
the job then costs one listing instead of two. A partition task is queued instead when the
worker runs with `inline=False`, which spreads even pure jobs over every worker.
"""

from __future__ import annotations

from bucketjobs.engine import progress, queue
from bucketjobs.engine.context import EngineContext
from bucketjobs.engine.jobctx import Step, load_step
from bucketjobs.jobs.model import JobState, JobType
from bucketjobs.ops.base import JobFailed
from bucketjobs.ops.registry import OPERATIONS
from bucketjobs.storage.listing import Entry, OrderError, iter_range
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
    except JobFailed as exc:
        await _fail(ctx, job_id, str(exc))
    except OrderError as exc:
        await _fail(ctx, job_id, str(exc))
    except StorageError as exc:
        await _fail(ctx, job_id, f"listing bucket {job.bucket_name!r} failed: {exc}")


async def _fail(ctx: EngineContext, job_id: int, message: str) -> None:
    async with ctx.db.begin() as conn:
        await progress.finish(conn, ctx.clock, job_id, JobState.FAILED, message=message)


async def _enumerate(ctx: EngineContext, step: Step, partition_entries: int) -> None:
    job = step.job
    job_id = job.id
    op = OPERATIONS[JobType(job.job_type)]
    seq = job.partitions_planned
    cursor: str | None = job.enum_cursor
    pending: list[Entry] = []

    inline = ctx.inline and op.pure
    limits = ctx.limits(job_id, step.op.common)

    async def write(last_key: str | None, next_key: str | None, part: list[Entry]) -> bool:
        nonlocal seq, cursor
        selected = sum(1 for e in part if op.count_entry(e))
        delta = await op.act(step.op, part) if inline else None
        try:
            async with ctx.db.begin() as conn:
                if not await progress.add_partition(
                    conn, ctx.clock, job_id, seq, (cursor, last_key, next_key), len(part), selected
                ):
                    return False
                if delta is None:
                    await queue.enqueue(conn, queue.PARTITION_TASK, {"job_id": job_id, "seq": seq})
                else:
                    await progress.advance(conn, ctx.clock, job_id, JobState.EXECUTING)
                    await progress.commit_partition(
                        conn, ctx.clock, job_id, seq, delta, ctx.worker_name
                    )
        except progress.JobEnded:
            return False
        seq, cursor = seq + 1, last_key
        return True

    pages = iter_range(
        step.lister,
        job.bucket_name,
        versions=step.versions,
        order=step.order,
        prefix=step.op.common.prefix,
        start_after=cursor,
        check_order=True,
    )
    async for page in pages:
        if inline:
            await limits.operations(len(page))
        if job_id in ctx.cancelled:
            return
        pending.extend(page)
        if len(pending) >= partition_entries:
            cut = split_at_key_boundary(pending)
            if cut > 0:
                if not await write(pending[cut - 1].key, pending[cut].key, pending[:cut]):
                    return
                pending = pending[cut:]
    if pending and not await write(None, None, pending):
        return
    async with ctx.db.begin() as conn:
        after = await progress.mark_enumerated(conn, ctx.clock, job_id)
        if after is not None and after.partitions_done == after.partitions_planned:
            await queue.enqueue_finish(conn, job_id)
