"""Retry transient storage errors with exponential backoff and full jitter.

Transient: 5xx, SlowDown/throttling, timeouts, connection resets. Everything else is
permanent and surfaces at once as `StorageError` with the S3 code and HTTP status.
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

T = TypeVar("T")

TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "RequestLimitExceeded",
        "TooManyRequests",
    }
)


class S3ResponseError(Exception):
    """An error answer to our own signed requests (storage/http.py), shaped like botocore's."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class StorageError(Exception):
    """A storage operation that failed permanently (or ran out of retries)."""

    def __init__(self, code: str, message: str, http_status: int | None, attempts: int) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.attempts = attempts


def classify(exc: BaseException) -> tuple[bool, str, int | None, str]:
    """(transient?, code, http status, message) for an exception raised by a storage call."""
    if isinstance(exc, S3ResponseError):
        transient = exc.code in TRANSIENT_CODES or exc.status >= 500
        return transient, exc.code, exc.status, exc.message
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(error.get("Code") or status or "Unknown")
        transient = code in TRANSIENT_CODES or (status is not None and int(status) >= 500)
        return transient, code, status, str(error.get("Message") or code)
    if isinstance(
        exc,
        EndpointConnectionError
        | ConnectionClosedError
        | ConnectTimeoutError
        | ReadTimeoutError
        | aiohttp.ClientError
        | asyncio.TimeoutError
        | ConnectionError,
    ):
        return True, "ConnectionError", None, str(exc) or type(exc).__name__
    if isinstance(exc, BotoCoreError):
        return False, type(exc).__name__, None, str(exc)
    raise exc


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int = 8,
    base_delay: float = 0.05,
    max_delay: float = 5.0,
) -> T:
    """Run `call` until it succeeds, fails permanently, or `attempts` run out."""
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except Exception as exc:
            transient, code, status, message = classify(exc)
            if not transient or attempt == attempts:
                raise StorageError(code, message, status, attempt) from exc
        await asyncio.sleep(random.uniform(0, min(max_delay, base_delay * 2**attempt)))
    raise AssertionError("unreachable")
