"""Liveness: make sure every active job always has its next step queued.

procrastinate retries nothing by itself when a worker dies (its task stays `doing`) or when
a task is aborted at shutdown. One sweep, run by every worker and serialised by an advisory
lock, (1) hands stalled tasks of dead workers back to the queue, and (2) re-queues a plan,
partition or finish step of an active job that has no live task. Steps are idempotent, so
a rare duplicate costs time, never correctness.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import text

from bucketjobs.engine import progress, queue
from bucketjobs.engine.runtime import WorkerRuntime

log = logging.getLogger(__name__)

_LOCK = 0x62_6A_72_63  # "bjrc"

_LIVE = """
    SELECT (args->>'job_id')::int AS job_id, task_name, (args->>'seq')::int AS seq
    FROM procrastinate_jobs
    WHERE queue_name = :queue AND status IN ('todo', 'doing')
"""

_MISSING_PARTITIONS = text(f"""
    SELECT p.job_id, p.seq FROM job_partitions p JOIN jobs j ON j.id = p.job_id
    WHERE j.state = ANY(:active) AND NOT p.done
      AND NOT EXISTS (SELECT 1 FROM ({_LIVE}) live
                      WHERE live.job_id = p.job_id AND live.seq = p.seq)
""")

_MISSING_PLANS = text(f"""
    SELECT j.id FROM jobs j
    WHERE j.state = ANY(:active) AND NOT j.enum_done
      AND NOT EXISTS (SELECT 1 FROM ({_LIVE}) live
                      WHERE live.job_id = j.id AND live.task_name = :plan)
""")

_MISSING_FINISH = text(f"""
    SELECT j.id FROM jobs j
    WHERE j.state = ANY(:active) AND j.enum_done
      AND j.partitions_done = j.partitions_planned
      AND NOT EXISTS (SELECT 1 FROM ({_LIVE}) live
                      WHERE live.job_id = j.id AND live.task_name = :finish)
""")


async def requeue_missing(runtime: WorkerRuntime) -> int:
    """One sweep; returns how many steps were queued again."""
    count = 0
    params: dict[str, Any] = {"queue": queue.QUEUE, "active": progress.ACTIVE}
    async with runtime.db.begin() as conn:
        if not await conn.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK}):
            return 0
        for job_id, seq in await conn.execute(_MISSING_PARTITIONS, params):
            await queue.enqueue(conn, queue.PARTITION_TASK, {"job_id": job_id, "seq": seq})
            count += 1
        for (job_id,) in await conn.execute(_MISSING_PLANS, {**params, "plan": queue.PLAN_TASK}):
            await queue.enqueue(conn, queue.PLAN_TASK, {"job_id": job_id}, lock=f"plan-{job_id}")
            count += 1
        finish = {**params, "finish": queue.FINISH_TASK}
        for (job_id,) in await conn.execute(_MISSING_FINISH, finish):
            await queue.enqueue_finish(conn, job_id)
            count += 1
    return count


async def live_workers(runtime: WorkerRuntime, stalled_after: float) -> int:
    async with runtime.db.connect() as conn:
        count = await conn.scalar(
            text(
                "SELECT count(*) FROM procrastinate_workers"
                " WHERE last_heartbeat > now() - make_interval(secs => :s)"
            ),
            {"s": stalled_after},
        )
    return max(int(count or 0), 1)


async def recovery_loop(
    runtime: WorkerRuntime, app: Any, interval: float, stalled_after: float
) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            for stalled in await app.job_manager.get_stalled_jobs(
                queue=queue.QUEUE, seconds_since_heartbeat=stalled_after
            ):
                await app.job_manager.retry_job(stalled)
            runtime.live_workers = await live_workers(runtime, stalled_after)
            requeued = await requeue_missing(runtime)
            if requeued:
                log.info("recovery re-queued %d job steps", requeued)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("recovery sweep failed: %s", exc)
