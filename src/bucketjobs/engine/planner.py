"""EXAMINING: prepare the job, then enumerate the bucket into key-range partitions.

The listing is streamed; each partition (about PARTITION_ENTRIES entries) is written with
its task and the enumeration cursor in one transaction, so a restart resumes after the last
partition written and never plans a key twice or skips one.
"""

from __future__ import annotations

from typing import Any

from bucketjobs.engine import progress, queue
from bucketjobs.engine.context import EngineContext
from bucketjobs.engine.jobctx import job_context
from bucketjobs.jobs.model import JobType
from bucketjobs.ops.base import JobFailed
from bucketjobs.ops.registry import OPERATIONS
from bucketjobs.storage.listing import Entry, iter_versions
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
    op = OPERATIONS[JobType(job.job_type)]
    jctx = await job_context(ctx, job)
    try:
        if job.partitions_planned == 0:
            await op.prepare(jctx)
        await _enumerate(ctx, job, op, jctx, partition_entries)
    except JobFailed as exc:
        await _fail(ctx, job_id, str(exc))
    except StorageError as exc:
        await _fail(ctx, job_id, f"listing bucket {job.bucket_name!r} failed: {exc}")


async def _fail(ctx: EngineContext, job_id: int, message: str) -> None:
    async with ctx.db.begin() as conn:
        await progress.finish(conn, ctx.clock, job_id, progress.JobState.FAILED, message=message)


async def _enumerate(
    ctx: EngineContext, job: Any, op: Any, jctx: Any, partition_entries: int
) -> None:
    job_id = job.id
    seq = job.partitions_planned
    cursor: str | None = job.enum_cursor
    pending: list[Entry] = []

    async def write(last_key: str | None, part: list[Entry]) -> bool:
        nonlocal seq, cursor
        selected = sum(1 for e in part if op.count_entry(e))
        async with ctx.db.begin() as conn:
            if not await progress.add_partition(
                conn, ctx.clock, job_id, seq, cursor, last_key, len(part), selected
            ):
                return False
            await queue.enqueue(conn, queue.PARTITION_TASK, {"job_id": job_id, "seq": seq})
        seq, cursor = seq + 1, last_key
        return True

    async for page in iter_versions(
        jctx.client, job.bucket_name, prefix=jctx.common.prefix, start_after=cursor
    ):
        if job_id in ctx.cancelled:
            return
        pending.extend(page)
        if len(pending) >= partition_entries:
            cut = split_at_key_boundary(pending)
            if cut > 0:
                if not await write(pending[cut - 1].key, pending[:cut]):
                    return
                pending = pending[cut:]
    if pending and not await write(None, pending):
        return
    async with ctx.db.begin() as conn:
        after = await progress.mark_enumerated(conn, ctx.clock, job_id)
        if after is not None and after.partitions_done == after.partitions_planned:
            await queue.enqueue_finish(conn, job_id)
