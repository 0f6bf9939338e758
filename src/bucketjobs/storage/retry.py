"""Retry transient storage errors with exponential backoff and full jitter.

Transient: 5xx, SlowDown/throttling, timeouts, connection resets (storage/errors.py says
which). Everything else is permanent and surfaces at once as the `StorageError` it is,
with `attempts` set.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from bucketjobs.storage.errors import (
    ConnectFailed,
    ProtocolError,
    S3Error,
    StorageError,
    TimedOut,
)

__all__ = ["StorageError", "classify", "with_retries"]

T = TypeVar("T")


def classify(exc: BaseException) -> StorageError:
    """The storage error `exc` stands for: ours as it is, a library's translated. Anything
    that is not a storage failure (a bug) is raised again unchanged."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        code = str(error.get("Code") or status or "Unknown")
        return S3Error(code, str(error.get("Message") or code), status)
    message = str(exc) or type(exc).__name__
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError | asyncio.TimeoutError):
        return TimedOut(message)
    if isinstance(exc, EndpointConnectionError | aiohttp.ClientConnectorError):
        return ConnectFailed(message)
    if isinstance(exc, ConnectionClosedError | aiohttp.ClientError | ConnectionError):
        return ProtocolError(message)
    if isinstance(exc, BotoCoreError):
        return StorageError(type(exc).__name__, message)
    raise exc


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int = 8,
    base_delay: float = 0.05,
    max_delay: float = 5.0,
    not_here: tuple[type[StorageError], ...] = (),
) -> T:
    """Run `call` until it succeeds, fails permanently, or `attempts` run out. Errors of
    the `not_here` kinds end it at once, transient or not: a caller further out retries
    them (a part of a copy whose source changed: the whole copy starts over)."""
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except Exception as exc:
            error = classify(exc)
            if not error.transient or attempt == attempts or isinstance(error, not_here):
                error.attempts = attempt
                if error is exc:
                    raise
                raise error from exc
        await asyncio.sleep(random.uniform(0, min(max_delay, base_delay * 2**attempt)))
    raise AssertionError("unreachable")
