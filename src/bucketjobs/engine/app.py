"""The procrastinate app: three tasks, each a thin shell over planner / runner / finisher.

procrastinate only carries "run step X of job J"; the job's truth lives in our tables.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Concatenate, ParamSpec

import procrastinate
import structlog

from bucketjobs.engine import finisher, planner, progress, queue, runner
from bucketjobs.engine.runtime import WorkerRuntime

# Unexpected errors (database blips) retry the step; our steps are idempotent. A step that
# still fails after MAX_ATTEMPTS retries (waits 2 s, 4 s, ... about 34 minutes in all) ends
# its job FAILED rather than leaving it active for ever.
MAX_ATTEMPTS = 10
RETRY = procrastinate.RetryStrategy(max_attempts=MAX_ATTEMPTS, wait=1, exponential_wait=2)

_context: WorkerRuntime | None = None
log = logging.getLogger(__name__)
P = ParamSpec("P")


def _logged(
    step: Callable[Concatenate[procrastinate.JobContext, P], Awaitable[None]],
) -> Callable[Concatenate[procrastinate.JobContext, P], Awaitable[None]]:
    """Log a failing step with its traceback before procrastinate schedules the retry; on
    the last attempt, fail the job with the error as its message."""

    @functools.wraps(step)
    async def wrapper(context: procrastinate.JobContext, *args: P.args, **kwargs: P.kwargs) -> None:
        # Every line logged while the step runs names its job (bucketjobs/logs.py).
        bound = structlog.contextvars.bind_contextvars(step=step.__name__, **kwargs)
        try:
            await step(context, *args, **kwargs)
            log.info("%s done", step.__name__)
        except Exception as exc:
            attempts = context.job.attempts + 1
            if context.job.attempts < MAX_ATTEMPTS:
                log.exception("%s failed; it will be retried", step.__name__)
                raise
            log.exception("%s failed %d times; failing the job", step.__name__, attempts)
            job_id = int(kwargs["job_id"])  # type: ignore[call-overload]
            message = f"internal error after {attempts} attempts: {type(exc).__name__}: {exc}"
            await progress.fail_job(_runtime().db, _runtime().clock, job_id, message[:2000])
            raise
        finally:
            structlog.contextvars.reset_contextvars(**bound)

    return wrapper


def set_runtime(runtime: WorkerRuntime) -> None:
    global _context
    _context = runtime


def _runtime() -> WorkerRuntime:
    if _context is None:
        raise RuntimeError("engine context not set: run tasks through bucketjobs.engine.worker")
    return _context


def build_app(conninfo: str, pool_size: int = 10) -> procrastinate.App:
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=conninfo, min_size=1, max_size=pool_size)
    )

    @app.task(name=queue.PLAN_TASK, queue=queue.QUEUE, retry=RETRY, pass_context=True)
    @_logged
    async def plan_task(_: procrastinate.JobContext, job_id: int) -> None:
        runtime = _runtime()
        await runtime.run_for_job(job_id, planner.plan(runtime, job_id))

    @app.task(name=queue.PARTITION_TASK, queue=queue.QUEUE, retry=RETRY, pass_context=True)
    @_logged
    async def partition_task(_: procrastinate.JobContext, job_id: int, seq: int) -> None:
        runtime = _runtime()
        await runtime.run_for_job(job_id, runner.run_partition(runtime, job_id, seq))

    @app.task(name=queue.FINISH_TASK, queue=queue.QUEUE, retry=RETRY, pass_context=True)
    @_logged
    async def finish_task(_: procrastinate.JobContext, job_id: int) -> None:
        runtime = _runtime()
        await runtime.run_for_job(job_id, finisher.finish_job(runtime, job_id))

    return app
