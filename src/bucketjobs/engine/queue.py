"""Enqueue procrastinate tasks inside *our* transaction.

A job row and its planning task, or a partition row and its task, commit together or not at
all: no job can be accepted without work queued for it, and no partition can be lost.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

PLAN_TASK = "bucketjobs.plan"
PARTITION_TASK = "bucketjobs.partition"
FINISH_TASK = "bucketjobs.finish"
QUEUE = "bucketjobs"
CANCEL_CHANNEL = "bucketjobs_cancel"

_DEFER = text(
    "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW(:queue, :task, :priority, :lock,"
    " :queueing_lock, CAST(:args AS jsonb), NULL)]::procrastinate_job_to_defer_v1[]))"
)


async def enqueue(
    conn: AsyncConnection,
    task: str,
    args: dict[str, Any],
    *,
    priority: int = 0,
    lock: str | None = None,
    queueing_lock: str | None = None,
) -> int:
    """Defer one task in the caller's transaction; returns procrastinate's job id."""
    job_id = await conn.scalar(
        _DEFER,
        {
            "queue": QUEUE,
            "task": task,
            "priority": priority,
            "lock": lock,
            "queueing_lock": queueing_lock,
            "args": json.dumps(args),
        },
    )
    return int(job_id)


async def enqueue_partitions(conn: AsyncConnection, job_id: int, seqs: range) -> None:
    """Defer one partition task per seq, in one statement."""
    if not seqs:
        return
    await conn.execute(
        text(
            "SELECT procrastinate_defer_jobs_v1(array_agg(ROW(:queue, :task, 0, NULL, NULL,"
            " jsonb_build_object('job_id', CAST(:job_id AS int), 'seq', seq), NULL)"
            "::procrastinate_job_to_defer_v1))"
            " FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS seq"
        ),
        {"queue": QUEUE, "task": PARTITION_TASK, "job_id": job_id,
         "first": seqs.start, "last": seqs.stop - 1},
    )  # fmt: skip


async def drop_queued(conn: AsyncConnection, job_id: int) -> None:
    """Mark this job's not-yet-started tasks cancelled so no worker picks them up."""
    await conn.execute(
        text(
            "UPDATE procrastinate_jobs SET status = 'cancelled' WHERE status = 'todo'"
            " AND queue_name = :queue AND (args->>'job_id')::int = :job_id"
        ),
        {"queue": QUEUE, "job_id": job_id},
    )


async def notify_cancel(conn: AsyncConnection, job_id: int) -> None:
    """Broadcast (delivered at commit) so every worker stops this job's operations."""
    await conn.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {
            "channel": CANCEL_CHANNEL,
            "payload": str(job_id),
        },
    )


async def enqueue_finish(conn: AsyncConnection, job_id: int) -> None:
    """Queue the job's finishing step. Only the transaction that completes the last partition
    (or ends enumeration after it) gets here; the finisher tolerates a rare second run."""
    await enqueue(conn, FINISH_TASK, {"job_id": job_id}, lock=f"finish-{job_id}")
