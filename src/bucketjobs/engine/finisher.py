"""The last step: combine partition results, apply the op's effect, end the job — atomically."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from bucketjobs.engine import progress
from bucketjobs.engine.runtime import WorkerRuntime
from bucketjobs.engine.step import load_step
from bucketjobs.jobs.model import JobState
from bucketjobs.ops.base import JobFailed
from bucketjobs.storage.retry import StorageError

_PARTIAL_SUMS = text(
    "SELECT e.key, sum(e.value::bigint) FROM job_partitions p,"
    " jsonb_each_text(p.result) AS e(key, value) WHERE p.job_id = :job_id GROUP BY e.key"
)


async def _partial_sums(conn: Any, job_id: int) -> dict[str, int]:
    """Sum every partition's partial counters inside the database (one row per counter)."""
    rows = await conn.execute(_PARTIAL_SUMS, {"job_id": job_id})
    return {key: int(total) for key, total in rows}


async def finish_job(runtime: WorkerRuntime, job_id: int) -> None:
    """Sum the partials, let the op finish, commit its effect and the job's end: one
    transaction, so a crash anywhere in it leaves the job to finish again."""
    try:
        async with runtime.db.begin() as conn:
            row = await progress.load_job(conn, job_id)
            if row is None or row.state not in progress.ACTIVE:
                return
            step = await load_step(runtime, row)
            clock = runtime.clock
            if progress.threshold_crossed(row, step.job.params.failure_threshold, final=True):
                message = f"{row.failed} objects failed, more than the failureThreshold"
                await progress.finish(conn, clock, job_id, JobState.FAILED, message=message)
                return
            completion = await step.op.finish(step.job, await _partial_sums(conn, job_id))
            if completion.counted is not None:
                await progress.add_counts(conn, clock, job_id, completion.counted)
            result = await completion.commit(conn, step.job, clock.now())
            if not await progress.finish(conn, clock, job_id, JobState.COMPLETE, result=result):
                raise progress.JobEnded(job_id)  # cancelled meanwhile: the effect rolls back
    except (StorageError, JobFailed) as exc:
        await progress.fail_job(runtime.db, runtime.clock, job_id, str(exc))
    except progress.JobEnded:
        return
