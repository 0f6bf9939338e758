"""The storage layer's errors: one small hierarchy, one name (`http_status`) for the status.

Every request our own S3 client makes fails with one of these, never with a built-in
exception, so callers catch one type and ask it two questions: is it worth retrying
(`transient`), and did the store answer at all (`http_status` is None when it did not).
Errors from libraries we call (aiohttp on streams, aiobotocore for rare calls) are turned
into these by `storage/retry.classify`.
"""

from __future__ import annotations

# S3 error codes that mean "try again later" whatever their status.
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


class StorageError(Exception):
    """A storage request that failed; `attempts` is how often it was tried in all."""

    transient = False

    def __init__(
        self, code: str, message: str, http_status: int | None = None, attempts: int = 1
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.attempts = attempts


class ConnectFailed(StorageError):
    """No connection to the endpoint (refused, unreachable, name unknown, TLS refused)."""

    transient = True

    def __init__(self, message: str) -> None:
        super().__init__("ConnectionError", message)


class TimedOut(StorageError):
    """The endpoint stopped answering: no connection, or no bytes, within the timeout."""

    transient = True

    def __init__(self, message: str) -> None:
        super().__init__("Timeout", message)


class ProtocolError(StorageError):
    """The connection broke mid-answer, or the answer was not HTTP the client can read."""

    transient = True

    def __init__(self, message: str) -> None:
        super().__init__("ConnectionError", message)


class AnswerTooLarge(StorageError):
    """An answer above the caller's size limit; it was not read."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__("AnswerTooLarge", f"answer of {length} bytes, limit {limit}")
        self.length = length


class S3Error(StorageError):
    """The store answered with an S3 error (or an unexpected status)."""

    def __init__(self, code: str, message: str, http_status: int) -> None:
        super().__init__(code, message, http_status)
        self.transient = code in TRANSIENT_CODES or http_status >= 500
