"""Cancel on the worker side: hear the broadcast, stop this job's work in this process.

The API commits CANCELLED and NOTIFYs in one transaction (jobs/service.py). Each worker
listens; on a notification it cancels the job's running tasks, which aborts their in-flight
requests. A poll of the running jobs' states every second covers a missed notification
(e.g. while the listening connection was being re-established).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import select

from bucketjobs.db.models import jobs
from bucketjobs.db.notifications import follow
from bucketjobs.engine.progress import ACTIVE
from bucketjobs.engine.queue import CANCEL_CHANNEL
from bucketjobs.engine.runtime import WorkerRuntime

log = logging.getLogger(__name__)


async def listen_for_cancels(runtime: WorkerRuntime, conninfo: str) -> None:
    def cancelled(payload: str) -> None:
        with contextlib.suppress(ValueError):
            runtime.cancel_local(int(payload))

    # On each (re)connection, catch up on anything cancelled while we were away; the poll
    # below covers the time in between.
    await follow(conninfo, CANCEL_CHANNEL, cancelled, on_connected=lambda: _sweep(runtime))


async def _sweep(runtime: WorkerRuntime) -> None:
    running = runtime.running_jobs()
    if not running:
        return
    async with runtime.db.connect() as conn:
        rows = await conn.execute(
            select(jobs.c.id).where(jobs.c.id.in_(running), jobs.c.state.not_in(ACTIVE))
        )
        for (job_id,) in rows:
            runtime.cancel_local(job_id)


async def poll_for_cancels(runtime: WorkerRuntime, interval: float = 1.0) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await _sweep(runtime)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("cancel poll failed: %s", exc)
