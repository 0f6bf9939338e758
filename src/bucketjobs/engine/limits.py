"""Per-job resources in one worker process: in-flight request slots, operations per second,
and the abort of requests still in flight when the job is cancelled.

`rateLimit` is a job-wide number; each process takes an equal share of it, by the count of
live workers (from procrastinate's heartbeats), so N workers together stay at the cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType


class TokenBucket:
    """Paces operations at `rate` per second. A batch starts all its operations at once, so
    it starts when the last of them may: by any moment t after the first booking, at most
    1 + rate * t operations have started. (Starting a batch at its first operation's time
    let a job of one page run at any speed.)"""

    def __init__(self, rate: float, now: float | None = None) -> None:
        self.rate = rate
        self._next = time.monotonic() if now is None else now  # when one more may start

    def book(self, count: int, now: float | None = None) -> float:
        """Book `count` operations; returns how long to wait before starting them."""
        now = time.monotonic() if now is None else now
        start = max(self._next + (count - 1) / self.rate, now)
        self._next = start + 1 / self.rate
        return start - now


class _Slot:
    """One object operation in flight: holds a `maxConcurrency` slot, and registers its task
    so that `JobLimits.abort` can end it (a class, not a generator: one is made per object)."""

    __slots__ = ("limits", "task")

    def __init__(self, limits: JobLimits) -> None:
        self.limits = limits
        self.task: asyncio.Task[object] | None = None

    async def __aenter__(self) -> None:
        limits = self.limits
        if limits.stopped:
            raise asyncio.CancelledError  # the job was cancelled: start nothing
        if limits.semaphore is not None:
            await limits.semaphore.acquire()
            if limits.stopped:  # cancelled while this operation waited its turn
                limits.semaphore.release()
                raise asyncio.CancelledError
        self.task = asyncio.current_task()
        limits.in_flight.add(self.task)  # type: ignore[arg-type]

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.limits.in_flight.discard(self.task)
        if self.limits.semaphore is not None:
            self.limits.semaphore.release()


class JobLimits:
    """One job's share of this process. `max_concurrency` is the job's own cap, or the
    process's pool size: an operation then waits for its turn here, where a cancel can still
    stop it, not in the connection pool, where it would count as started."""

    def __init__(self, max_concurrency: int | None, rate: float | None) -> None:
        self.semaphore = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        self._bucket = TokenBucket(rate) if rate else None
        self.in_flight: set[asyncio.Task[object]] = set()
        self.stopped = False
        self._stop = asyncio.Event()  # wakes whatever waits for its turn under the rate

    def slot(self) -> _Slot:
        """Hold one of the job's in-flight request slots for one object operation."""
        return _Slot(self)

    def listing(self) -> asyncio.Semaphore | _NoLimit:
        """Hold a slot for a whole listing (a pure op's partition); never aborted."""
        return self.semaphore if self.semaphore is not None else _NO_LIMIT

    async def operations(self, count: int) -> None:
        """Wait until `count` object operations fit under the job's rate, or the job is
        cancelled (a lane may have booked seconds ahead; its caller then sees the stop)."""
        if self._bucket is None or count <= 0:
            return
        wait = self._bucket.book(count)
        if wait > 0 and not self.stopped:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)

    def stop(self) -> None:
        """The job was cancelled: no object operation starts from now on, not even one that
        was waiting for a slot or for its turn under the rate."""
        self.stopped = True
        self._stop.set()

    def abort(self) -> int:
        """End the object operations still in flight (the job was cancelled a grace period
        ago): their requests are dropped. Returns how many."""
        self.stop()
        for task in list(self.in_flight):
            task.cancel()
        return len(self.in_flight)


class _NoLimit:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


_NO_LIMIT = _NoLimit()
