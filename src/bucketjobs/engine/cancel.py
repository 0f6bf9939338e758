"""Cancel on the worker side: hear the broadcast, stop this job's work in this process.

The API commits CANCELLED and NOTIFYs in one transaction (jobs/service.py). Each worker
listens; on a notification it cancels the job's running tasks, which aborts their in-flight
requests. A poll of the running jobs' states every second covers a missed notification
(e.g. while the listening connection was being re-established).
"""

from __future__ import annotations

import asyncio
import logging

import psycopg
from sqlalchemy import select

from bucketjobs.db.models import jobs
from bucketjobs.engine.context import EngineContext
from bucketjobs.engine.progress import ACTIVE
from bucketjobs.engine.queue import CANCEL_CHANNEL

log = logging.getLogger(__name__)


async def listen_for_cancels(ctx: EngineContext, conninfo: str) -> None:
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CANCEL_CHANNEL}")
                await _sweep(ctx)  # catch up on anything cancelled while we were away
                async for note in conn.notifies():
                    try:
                        ctx.cancel_local(int(note.payload))
                    except ValueError:
                        continue
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # database away: retry, the poll below still runs
            log.warning("cancel listener lost its connection: %s", exc)
            await asyncio.sleep(1)


async def _sweep(ctx: EngineContext) -> None:
    running = ctx.running_jobs()
    if not running:
        return
    async with ctx.db.connect() as conn:
        rows = await conn.execute(
            select(jobs.c.id).where(jobs.c.id.in_(running), jobs.c.state.not_in(ACTIVE))
        )
        for (job_id,) in rows:
            ctx.cancel_local(job_id)


async def poll_for_cancels(ctx: EngineContext, interval: float = 1.0) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await _sweep(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("cancel poll failed: %s", exc)
