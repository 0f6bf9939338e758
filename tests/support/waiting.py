"""Waiting in tests, always with a deadline: a test that waits fails, it never hangs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tests.support.mapi import Mapi

T = TypeVar("T")


async def wait_until(
    check: Callable[[], Awaitable[T]],
    *,
    timeout: float = 60,
    interval: float = 0.05,
    what: str = "the condition",
) -> T:
    """Await `check` until it returns something true; that value. TimeoutError naming
    `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:g} s")
        await asyncio.sleep(interval)


async def progress(admin: Mapi, job_id: int, at_least: int = 1, timeout: float = 60) -> Any:
    """The job's status once it has processed at least `at_least` objects."""

    async def moved() -> Any:
        job = await admin.status(job_id)
        return job if job["jobStats"]["processed"] >= at_least else None

    return await wait_until(moved, timeout=timeout, what=f"job {job_id} processing {at_least}")
