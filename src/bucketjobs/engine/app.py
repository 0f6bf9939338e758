"""The procrastinate app: three tasks, each a thin shell over planner / runner / finisher.

procrastinate only carries "run step X of job J"; the job's truth lives in our tables.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import ParamSpec

import procrastinate

from bucketjobs.engine import finisher, planner, queue, runner
from bucketjobs.engine.context import EngineContext

# Unexpected errors (database blips) retry the step; our steps are idempotent.
RETRY = procrastinate.RetryStrategy(max_attempts=20, wait=1, exponential_wait=2)

_context: EngineContext | None = None
log = logging.getLogger(__name__)
P = ParamSpec("P")


def _logged(step: Callable[P, Awaitable[None]]) -> Callable[P, Awaitable[None]]:
    """Log a failing step with its traceback before procrastinate schedules the retry."""

    @functools.wraps(step)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            await step(*args, **kwargs)
        except Exception:
            log.exception("%s%s failed; it will be retried", step.__name__, kwargs or args)
            raise

    return wrapper


def set_context(ctx: EngineContext) -> None:
    global _context
    _context = ctx


def _ctx() -> EngineContext:
    if _context is None:
        raise RuntimeError("engine context not set: run tasks through bucketjobs.engine.worker")
    return _context


def build_app(conninfo: str, pool_size: int = 10) -> procrastinate.App:
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=conninfo, min_size=1, max_size=pool_size)
    )

    @app.task(name=queue.PLAN_TASK, queue=queue.QUEUE, retry=RETRY)
    @_logged
    async def plan_task(job_id: int) -> None:
        ctx = _ctx()
        await ctx.run_for_job(job_id, planner.plan(ctx, job_id))

    @app.task(name=queue.PARTITION_TASK, queue=queue.QUEUE, retry=RETRY)
    @_logged
    async def partition_task(job_id: int, seq: int) -> None:
        ctx = _ctx()
        await ctx.run_for_job(job_id, runner.run_partition(ctx, job_id, seq))

    @app.task(name=queue.FINISH_TASK, queue=queue.QUEUE, retry=RETRY)
    @_logged
    async def finish_task(job_id: int) -> None:
        ctx = _ctx()
        await ctx.run_for_job(job_id, finisher.finish_job(ctx, job_id))

    return app
