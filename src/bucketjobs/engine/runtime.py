"""Per-process engine resources: database, S3 clients, and the local cancel registry.

A cancel stops a job in two steps (SPEC §3): nothing new starts at once, and what is in
flight is counted if it ends within a grace period, aborted if not (docs/DECISIONS.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
from bucketjobs.notify.senders import Sender, open_sender
from bucketjobs.notify.service import NotificationService, Target
from bucketjobs.storage.components import load_component
from bucketjobs.storage.http import S3Http
from bucketjobs.storage.s3 import open_client
from bucketjobs.storage.store import Store

log = logging.getLogger(__name__)

COMPONENT_TTL = 5.0  # seconds a worker trusts its copy of a storage component
STOP_GRACE = 0.8  # seconds a cancelled job's object operations in flight get to finish
STOP_DEADLINE = 10.0  # seconds after which a cancelled job's steps are cancelled outright


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
        self.inline = inline  # planners act on inline ops' pages themselves (planner.py)
        self._stores: dict[int, tuple[float, Store]] = {}
        self._senders: dict[int, tuple[float, Target, Sender]] = {}
        self.notifications = NotificationService(db, fernet)
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

    async def sender(self, target_id: int) -> tuple[Target, Sender]:
        """A notification target with its open sender, shared by every step of this
        process (connections are reused across jobs, not opened per event). Read again at
        most every COMPONENT_TTL seconds; a changed config opens a new sender."""
        now = time.monotonic()
        cached = self._senders.get(target_id)
        if cached is not None and now - cached[0] < COMPONENT_TTL:
            return cached[1], cached[2]
        async with self._store_lock:
            cached = self._senders.get(target_id)
            if cached is not None and now - cached[0] < COMPONENT_TTL:
                return cached[1], cached[2]
            target = await self.notifications.target(target_id)
            if cached is not None and cached[1] == target:
                sender = cached[2]
            else:
                sender = open_sender(target)
                self._stack.push_async_callback(sender.close)
            self._senders[target_id] = (time.monotonic(), target, sender)
            return target, sender

    def limits(self, job_id: int, params: CommonParams) -> JobLimits:
        """This process's share of the job's `maxConcurrency` and `rateLimit`."""
        if job_id not in self._limits:
            rate = params.rate_limit / max(self.live_workers, 1) if params.rate_limit else None
            slots = params.max_concurrency or self.max_requests
            self._limits[job_id] = JobLimits(slots, rate)
        return self._limits[job_id]

    def stopping(self, job_id: int) -> bool:
        """Whether `job_id` was cancelled: its steps start no new object operation."""
        return job_id in self.cancelled

    def cancel_local(self, job_id: int) -> None:
        """Stop `job_id` in this process: no object operation starts from now on; those in
        flight get STOP_GRACE seconds to finish (so they are counted), then are aborted; a
        step still running STOP_DEADLINE seconds later (e.g. retrying a listing of a store
        that is down) is cancelled outright."""
        if job_id in self.cancelled:
            return
        self.cancelled.add(job_id)
        if job_id in self._limits:
            self._limits[job_id].stop()
        if job_id in self._running:
            loop = asyncio.get_running_loop()
            loop.call_later(STOP_GRACE, self._abort_operations, job_id)
            loop.call_later(STOP_DEADLINE, self._abort_steps, job_id)

    def _abort_operations(self, job_id: int) -> None:
        limits = self._limits.get(job_id)
        if limits is not None and (aborted := limits.abort()):
            log.warning(
                "job %d: %d object operations still in flight %.1f s after its cancel were"
                " aborted; the store may still complete them, uncounted",
                job_id, aborted, STOP_GRACE,
            )  # fmt: skip

    def _abort_steps(self, job_id: int) -> None:
        for task in list(self._running.get(job_id, ())):
            task.cancel()

    def running_jobs(self) -> list[int]:
        return [job_id for job_id, tasks in self._running.items() if tasks]

    async def run_for_job(self, job_id: int, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as a step of `job_id`, which `cancel_local` can end.

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
