"""Per-job caps in one worker process: in-flight storage requests and operations per second.

`rateLimit` is a job-wide number; each process takes an equal share of it, by the count of
live workers (from procrastinate's heartbeats), so N workers together stay at the cap.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any


class TokenBucket:
    """Paces operations at `rate` per second: each batch books its slot in time."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._next = time.monotonic()

    async def take(self, count: int) -> None:
        now = time.monotonic()
        start = max(self._next, now)
        self._next = start + count / self.rate
        if start > now:
            await asyncio.sleep(start - now)


class JobLimits:
    def __init__(self, max_concurrency: int | None, rate: float | None) -> None:
        self._semaphore = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        self._bucket = TokenBucket(rate) if rate else None

    def slot(self) -> AbstractAsyncContextManager[Any]:
        """Hold one of the job's in-flight request slots."""
        return self._semaphore if self._semaphore is not None else nullcontext()

    async def operations(self, count: int) -> None:
        """Wait until `count` object operations fit under the job's rate."""
        if self._bucket is not None and count > 0:
            await self._bucket.take(count)
