"""`GET /mapi/v1/jobs/events?jobId=N`: a job's changes as Server-Sent Events (SPEC §3).

One LISTEN per API process (the `bucketjobs_jobs` channel, migration 0009) feeds every
stream: when a job changes, its row is read once and its view handed to each subscriber
of that job, not read by a poll per client. A subscriber keeps only the newest view it has
not sent: each event is the whole Job object, so a slow reader skips views, never state.
A stream sends the snapshot first, then each change, a comment every PING_SECONDS to keep
proxies from closing it, and ends after the job's terminal state. While the listener is
away (the database restarting), streams wake every few seconds and read the row
themselves.

What an idle stream holds is kept small (bench/events.py): the route checks the token and
the job and reads the snapshot as every route does, then hands the stream to
`DeferredStreams`, which runs it after the framework's handler has returned, so the frames
and objects of the middleware chain are not held for the stream's life; a stream waits on
one future, and one task watches for the client leaving. That took an idle stream from
about 40 KiB to about 15 KiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from bucketjobs.api.jobs import COMMON_ERRORS
from bucketjobs.api.schemas import errors
from bucketjobs.api.security import Caller, require, state_of
from bucketjobs.auth import permissions as perm
from bucketjobs.db.notifications import follow
from bucketjobs.jobs.model import INT32_MAX, INT32_MIN, JobState
from bucketjobs.jobs.service import JobService
from bucketjobs.jobs.wire import job_view

log = logging.getLogger(__name__)

CHANNEL = "bucketjobs_jobs"
PING_SECONDS = 15.0
UNHEARD_POLL = 3.0  # how often streams read their job while the listener is away
DEFERRED = "bucketjobs.deferred_streams"  # scope key: streams to run after the handler
HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"),
           (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]  # fmt: skip

router = APIRouter(tags=["jobs"])


class Subscription:
    """One stream's mailbox: the newest view not yet sent, and the future its stream waits
    on (made only while it waits)."""

    __slots__ = ("left", "view", "waiter")

    def __init__(self) -> None:
        self.view: dict[str, Any] | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.left = False  # the client went away

    def offer(self, view: dict[str, Any]) -> None:
        self.view = view
        self._wake()

    def leave(self) -> None:
        self.left = True
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait(self, seconds: float) -> None:
        """Until a view is offered, the client leaves, or `seconds` pass."""
        if self.view is not None or self.left:
            return
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(seconds):
                await self.waiter
        except TimeoutError:
            pass
        finally:
            self.waiter = None


class JobFeed:
    """Subscribers by job id, and the listener that wakes them."""

    def __init__(self, jobs: JobService) -> None:
        self.jobs = jobs
        self.listening = False
        self._subscribers: dict[int, set[Subscription]] = {}
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
    def subscribe(self, job_id: int) -> Iterator[Subscription]:
        subscription = Subscription()
        self._subscribers.setdefault(job_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            subscriptions = self._subscribers.get(job_id, set())
            subscriptions.discard(subscription)
            if not subscriptions:
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
                    for subscription in list(self._subscribers.get(job_id, ())):
                        subscription.offer(view)
                if job_id not in self._again:
                    return
        except Exception:  # the database is away: streams poll until it is back
            return
        finally:
            self._reading.discard(job_id)


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]


class _Deferred(Response):
    """What the route answers: the stream, left for DeferredStreams to run."""

    def __init__(self, feed: JobFeed, job_id: int, first: dict[str, Any]) -> None:
        super().__init__(media_type="text/event-stream")
        self.stream = (feed, job_id, first)

    async def __call__(self, scope: Any, receive: Receive, send: Send) -> None:
        scope[DEFERRED].append(self.stream)


class DeferredStreams:
    """Outside the framework's middleware: runs the event streams that routes left in the
    scope, once the handler has returned. Anything else passes through untouched."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/jobs/events"):
            await self.app(scope, receive, send)
            return
        deferred: list[tuple[JobFeed, int, dict[str, Any]]] = []
        scope[DEFERRED] = deferred
        await self.app(scope, receive, send)
        for feed, job_id, first in deferred:
            await _stream(feed, job_id, first, receive, send)


async def _stream(
    feed: JobFeed, job_id: int, first: dict[str, Any], receive: Receive, send: Send
) -> None:
    with feed.subscribe(job_id) as subscription:

        async def watch_for_leaving() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            subscription.leave()

        watcher = asyncio.get_running_loop().create_task(watch_for_leaving())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            await _follow(feed, job_id, first, subscription, send)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except Exception:  # a database read failed mid-stream: end it, as a lost client would
            log.warning("event stream of job %s ended early", job_id, exc_info=True)
        finally:
            watcher.cancel()


async def _follow(
    feed: JobFeed, job_id: int, last: dict[str, Any], subscription: Subscription, send: Send
) -> None:
    await send({"type": "http.response.body", "body": sse("job", last), "more_body": True})
    while not JobState(last["jobState"]).terminal and not subscription.left:
        await subscription.wait(PING_SECONDS if feed.listening else UNHEARD_POLL)
        view, subscription.view = subscription.view, None
        if view is None and not subscription.left:
            if feed.listening:
                await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})
                continue
            row = await feed.jobs.row(job_id)
            if row is None:
                return
            view = job_view(row)
        if view is not None and view != last:
            await send({"type": "http.response.body", "body": sse("job", view), "more_body": True})
            last = view


@router.get(
    "/jobs/events",
    response_class=Response,
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
) -> Response:
    """Server-Sent Events of one job: a snapshot, then every change of state or counters,
    until its terminal state."""
    state = state_of(request)
    first = job_view(await state.jobs.status(caller, jobId))  # 404 unless the caller sees it
    return _Deferred(request.app.state.job_feed, jobId, first)
