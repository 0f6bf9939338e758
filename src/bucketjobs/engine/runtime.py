"""Per-process engine resources: database, S3 clients, and the local cancel registry."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections import defaultdict
from collections.abc import Coroutine
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine

from bucketjobs.clock import Clock
from bucketjobs.engine.limits import JobLimits
from bucketjobs.jobs.params import CommonParams
from bucketjobs.storage.components import load_component
from bucketjobs.storage.http import S3Http
from bucketjobs.storage.s3 import open_client
from bucketjobs.storage.store import Store

COMPONENT_TTL = 5.0  # seconds a worker trusts its copy of a storage component


class WorkerRuntime:
    def __init__(
        self,
        db: AsyncEngine,
        fernet: Fernet,
        clock: Clock,
        max_requests: int,
        *,
        inline: bool = True,
    ) -> None:
        self.db = db
        self.fernet = fernet
        self.clock = clock
        self.max_requests = max_requests
        self.inline = inline  # planners act on pure jobs' pages themselves (planner.py)
        self._stores: dict[int, tuple[float, Store]] = {}
        self._store_lock = asyncio.Lock()
        self._stack = contextlib.AsyncExitStack()
        self.cancelled: set[int] = set()
        self._running: defaultdict[int, set[asyncio.Task[Any]]] = defaultdict(set)
        self._limits: dict[int, JobLimits] = {}
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"
        self.live_workers = 1  # kept current by the recovery loop, for rate shares

    async def store(self, component_id: int) -> Store:
        """A component with its pools, shared by every step of this process.

        The component is read again at most every COMPONENT_TTL seconds; when its endpoint
        or credentials have changed, new pools are opened for the steps that start from then
        on (the old ones stay open for steps still using them, until the process ends).
        """
        now = time.monotonic()
        cached = self._stores.get(component_id)
        if cached is not None and now - cached[0] < COMPONENT_TTL:
            return cached[1]
        async with self._store_lock:
            cached = self._stores.get(component_id)
            if cached is not None and now - cached[0] < COMPONENT_TTL:
                return cached[1]
            async with self.db.connect() as conn:
                component = await load_component(conn, self.fernet, component_id)
            if cached is not None and cached[1].component == component:
                store = cached[1]
            else:
                http = S3Http(component, self.max_requests)
                self._stack.push_async_callback(http.close)
                client = await self._stack.enter_async_context(
                    open_client(component, self.max_requests)
                )
                store = Store(component, http, client)
            self._stores[component_id] = (time.monotonic(), store)
            return store

    def limits(self, job_id: int, params: CommonParams) -> JobLimits:
        """This process's share of the job's `maxConcurrency` and `rateLimit`."""
        if job_id not in self._limits:
            rate = params.rate_limit / max(self.live_workers, 1) if params.rate_limit else None
            self._limits[job_id] = JobLimits(params.max_concurrency, rate)
        return self._limits[job_id]

    def cancel_local(self, job_id: int) -> None:
        """Stop every operation of `job_id` in this process, now and from now on."""
        self.cancelled.add(job_id)
        for task in list(self._running.get(job_id, ())):
            task.cancel()

    def running_jobs(self) -> list[int]:
        return [job_id for job_id, tasks in self._running.items() if tasks]

    async def run_for_job(self, job_id: int, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` so a cancel of `job_id` aborts it (and its in-flight requests) at once.

        A cancel of the job ends the work quietly; a cancel of this task itself (worker
        shutdown) propagates so the queue sees the partition as not finished.
        """
        if job_id in self.cancelled:
            work.close()
            return
        task = asyncio.ensure_future(work)
        self._running[job_id].add(task)
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        finally:
            self._running[job_id].discard(task)
            if not self._running[job_id]:
                del self._running[job_id]
                self._limits.pop(job_id, None)

    async def close(self) -> None:
        await self._stack.aclose()
        await self.db.dispose()
