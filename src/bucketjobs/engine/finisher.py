"""The last step: combine partition results, apply the job's effect, end the job — atomically."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert

from bucketjobs.db.models import bucket_metrics
from bucketjobs.engine import progress
from bucketjobs.engine.context import EngineContext
from bucketjobs.engine.jobctx import load_step
from bucketjobs.jobs.model import JobState, JobType
from bucketjobs.ops.base import JobFailed
from bucketjobs.ops.registry import OPERATIONS
from bucketjobs.storage.retry import StorageError

_PARTIAL_SUMS = text(
    "SELECT e.key, sum(e.value::bigint) FROM job_partitions p,"
    " jsonb_each_text(p.result) AS e(key, value) WHERE p.job_id = :job_id GROUP BY e.key"
)


async def _partial_sums(conn: Any, job_id: int) -> dict[str, int]:
    """Sum every partition's partial counters inside the database (one row per counter)."""
    rows = await conn.execute(_PARTIAL_SUMS, {"job_id": job_id})
    return {key: int(total) for key, total in rows}


async def finish_job(ctx: EngineContext, job_id: int) -> None:
    async with ctx.db.connect() as conn:
        job = await progress.load_job(conn, job_id)
        if job is None or job.state not in progress.ACTIVE:
            return
        totals = await _partial_sums(conn, job_id)
        previous = (
            await conn.execute(
                select(bucket_metrics.c.metrics).where(
                    bucket_metrics.c.component_id == job.component_id,
                    bucket_metrics.c.bucket_name == job.bucket_name,
                )
            )
        ).scalar()
    op = OPERATIONS[JobType(job.job_type)]
    jctx = (await load_step(ctx, job)).op
    try:
        result = await op.finish(jctx, totals, previous)
    except (StorageError, JobFailed) as exc:
        await progress.fail_job(ctx.db, ctx.clock, job_id, str(exc))
        return

    async with ctx.db.begin() as conn:
        if progress.threshold_crossed(job, jctx.common.failure_threshold, final=True):
            message = f"{job.failed} objects failed, more than the failureThreshold"
            await progress.finish(conn, ctx.clock, job_id, JobState.FAILED, message=message)
            return
        ended = await progress.finish(conn, ctx.clock, job_id, JobState.COMPLETE, result=result)
        if ended and result.get("stored"):
            values = {
                "metrics": result["metrics"],
                "reconciled_at": ctx.clock.now(),
                "job_id": job_id,
            }
            await conn.execute(
                insert(bucket_metrics)
                .values(component_id=job.component_id, bucket_name=job.bucket_name, **values)
                .on_conflict_do_update(index_elements=["component_id", "bucket_name"], set_=values)
            )
