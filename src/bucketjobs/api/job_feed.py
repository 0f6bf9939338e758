"""`GET /mapi/v1/jobs/events?jobId=N`: a job's changes as Server-Sent Events (SPEC §3).

One LISTEN per API process (the `bucketjobs_jobs` channel, migration 0009) feeds every
stream: when a job changes, its row is read once and its view handed to each subscriber
of that job, not read by a poll per client. A subscriber's buffer holds BUFFER events;
each event is the whole Job object, so when a slow reader's buffer is full the oldest is
dropped and nothing that matters is lost (the newest view wins). A stream sends the
snapshot first, then each change, a comment every PING_SECONDS to keep proxies from
closing it, and ends after the job's terminal state. While the listener is away (the
database restarting), streams wake every few seconds and read the row themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from bucketjobs.api.jobs import COMMON_ERRORS
from bucketjobs.api.schemas import errors
from bucketjobs.api.security import Caller, require, state_of
from bucketjobs.auth import permissions as perm
from bucketjobs.db.notifications import follow
from bucketjobs.jobs.model import INT32_MAX, INT32_MIN, JobState
from bucketjobs.jobs.service import JobService
from bucketjobs.jobs.wire import job_view

CHANNEL = "bucketjobs_jobs"
BUFFER = 8  # events a subscriber may fall behind by
PING_SECONDS = 15.0
UNHEARD_POLL = 3.0  # how often streams read their job while the listener is away

router = APIRouter(tags=["jobs"])


class JobFeed:
    """Subscribers by job id, and the listener that wakes them."""

    def __init__(self, jobs: JobService) -> None:
        self.jobs = jobs
        self.listening = False
        self._subscribers: dict[int, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._reading: set[int] = set()  # jobs whose row is being read for their streams
        self._again: set[int] = set()  # ... and changed again meanwhile

    async def listen(self, conninfo: str) -> None:
        def lost() -> None:
            self.listening = False

        async def connected() -> None:
            self.listening = True
            for job_id in list(self._subscribers):  # what changed while away
                self._heard(str(job_id))

        await follow(conninfo, CHANNEL, self._heard, on_connected=connected, on_lost=lost)

    @contextlib.contextmanager
    def subscribe(self, job_id: int) -> Iterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(BUFFER)
        self._subscribers.setdefault(job_id, set()).add(queue)
        try:
            yield queue
        finally:
            queues = self._subscribers.get(job_id, set())
            queues.discard(queue)
            if not queues:
                self._subscribers.pop(job_id, None)

    def _heard(self, payload: str) -> None:
        try:
            job_id = int(payload)
        except ValueError:
            return
        if job_id not in self._subscribers:
            return
        if job_id in self._reading:
            self._again.add(job_id)
            return
        self._reading.add(job_id)
        asyncio.get_running_loop().create_task(self._publish(job_id))

    async def _publish(self, job_id: int) -> None:
        """Read the job once and hand its view to each of its subscribers."""
        try:
            while True:
                self._again.discard(job_id)
                row = await self.jobs.row(job_id)
                if row is not None:
                    view = job_view(row)
                    for queue in list(self._subscribers.get(job_id, ())):
                        offer(queue, view)
                if job_id not in self._again:
                    return
        except Exception:  # the database is away: streams poll until it is back
            return
        finally:
            self._reading.discard(job_id)


def offer(queue: asyncio.Queue[dict[str, Any]], view: dict[str, Any]) -> None:
    """Queue a view, dropping the oldest if the reader is BUFFER events behind."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(view)


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@router.get(
    "/jobs/events",
    response_class=StreamingResponse,
    responses={
        **errors(404, *COMMON_ERRORS),
        200: {
            "description": "`event: job` with the Job object, first as it is, then at each change",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
    },
)
async def job_events(
    request: Request,
    jobId: int = Query(ge=INT32_MIN, le=INT32_MAX),
    caller: Caller = Depends(require(perm.JOBS_STATUS)),
) -> StreamingResponse:
    """Server-Sent Events of one job: a snapshot, then every change of state or counters,
    until its terminal state."""
    state = state_of(request)
    first = job_view(await state.jobs.status(caller, jobId))  # 404 unless the caller sees it
    feed: JobFeed = request.app.state.job_feed
    return StreamingResponse(
        _stream(feed, jobId, first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(feed: JobFeed, job_id: int, first: dict[str, Any]) -> AsyncIterator[bytes]:
    with feed.subscribe(job_id) as queue:
        yield sse("job", first)
        last = first
        while not JobState(last["jobState"]).terminal:
            wait = PING_SECONDS if feed.listening else UNHEARD_POLL
            try:
                view = await asyncio.wait_for(queue.get(), wait)
            except TimeoutError:
                if feed.listening:
                    yield b": ping\n\n"
                    continue
                row = await feed.jobs.row(job_id)
                if row is None:
                    return
                view = job_view(row)
            if view != last:
                yield sse("job", view)
                last = view
