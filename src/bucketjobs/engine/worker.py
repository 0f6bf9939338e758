"""A worker process: procrastinate's worker plus our cancel listener and recovery sweep."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from pathlib import Path

import prometheus_client

from bucketjobs.clock import clock
from bucketjobs.db.session import create_engine, libpq_url
from bucketjobs.engine import app as engine_app
from bucketjobs.engine import queue
from bucketjobs.engine.cancel import listen_for_cancels, poll_for_cancels
from bucketjobs.engine.recovery import recovery_loop
from bucketjobs.engine.runtime import WorkerRuntime
from bucketjobs.storage.secrets import check_fernet, load_fernet


async def run_worker(
    database_url: str,
    data_dir: Path,
    *,
    concurrency: int = 8,
    max_requests: int = 128,
    heartbeat_interval: float = 5.0,
    stalled_after: float = 20.0,
    recovery_interval: float = 5.0,
    shutdown_timeout: float = 10.0,
    inline: bool = True,
    metrics_address: tuple[str, int] | None = None,
) -> None:
    """Run until SIGTERM/SIGINT; in-flight steps get `shutdown_timeout` to finish, then are
    aborted and handed back to the queue by the recovery sweep. With `metrics_address`,
    this process's Prometheus figures are served there (bucketjobs/metrics.py)."""
    if metrics_address is not None:
        prometheus_client.start_http_server(metrics_address[1], addr=metrics_address[0])
    conninfo = libpq_url(database_url)
    fernet = load_fernet(data_dir)
    db = create_engine(database_url, pool_size=concurrency + 2)
    try:
        async with db.begin() as conn:
            await check_fernet(conn, fernet, data_dir)
    except BaseException:
        await db.dispose()
        raise
    runtime = WorkerRuntime(
        db,
        fernet,
        clock,
        max_requests,
        inline=inline,
    )
    engine_app.set_runtime(runtime)
    app = engine_app.build_app(conninfo, pool_size=concurrency + 2)
    async with app.open_async():
        # What startup built (service models, SQL constructs, modules) lives as long as the
        # process: keep it out of every garbage collection. A job allocates a listing page
        # of entries at a time, and each collection otherwise walks the whole startup heap
        # (parsing a page cost ~30 % more without this, docs/PERFORMANCE.md).
        gc.freeze()
        side = [
            asyncio.create_task(listen_for_cancels(runtime, conninfo)),
            asyncio.create_task(poll_for_cancels(runtime)),
            asyncio.create_task(recovery_loop(runtime, app, recovery_interval, stalled_after)),
        ]
        try:
            await app.run_worker_async(
                queues=[queue.QUEUE],
                concurrency=concurrency,
                fetch_job_polling_interval=1.0,
                abort_job_polling_interval=1.0,
                shutdown_graceful_timeout=shutdown_timeout,
                delete_jobs="successful",
                update_heartbeat_interval=heartbeat_interval,
                stalled_worker_timeout=stalled_after,
                install_signal_handlers=True,
            )
        finally:
            for task in side:
                task.cancel()
            for task in side:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await runtime.close()
