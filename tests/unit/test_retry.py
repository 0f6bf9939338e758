"""Transient storage errors are retried with backoff; permanent ones surface at once."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from bucketjobs.storage.errors import ConnectFailed, ProtocolError, S3Error, StorageError, TimedOut
from bucketjobs.storage.retry import with_retries


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "ListObjectsV2",
    )


class Flaky:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


@pytest.mark.parametrize(
    "transient",
    [
        _client_error("SlowDown", 503),
        _client_error("InternalError", 500),
        _client_error("RequestTimeout", 400),
        S3Error("ServiceUnavailable", "busy", 503),
        S3Error("NotImplemented", "odd", 501),
        ConnectFailed("refused"),
        TimedOut("slow"),
        ProtocolError("reset"),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ConnectionResetError(),
        TimeoutError(),
    ],
    ids=lambda e: type(e).__name__ + ":" + str(getattr(e, "code", "")),
)
async def test_transient_errors_are_retried(transient):
    call = Flaky([transient, transient])
    assert await with_retries(call, base_delay=0.001) == "ok"
    assert call.calls == 3


@pytest.mark.parametrize(
    "permanent,code,status",
    [
        (_client_error("NoSuchBucket", 404), "NoSuchBucket", 404),
        (_client_error("AccessDenied", 403), "AccessDenied", 403),
        (S3Error("NoSuchKey", "gone", 404), "NoSuchKey", 404),
    ],
)
async def test_permanent_errors_surface_at_once(permanent, code, status):
    call = Flaky([permanent])
    with pytest.raises(StorageError) as raised:
        await with_retries(call, base_delay=0.001)
    assert call.calls == 1
    assert (raised.value.code, raised.value.http_status, raised.value.attempts) == (code, status, 1)


async def test_retries_run_out():
    call = Flaky([_client_error("SlowDown", 503)] * 10)
    with pytest.raises(StorageError) as raised:
        await with_retries(call, attempts=4, base_delay=0.001)
    assert call.calls == 4 and raised.value.attempts == 4 and raised.value.code == "SlowDown"


async def test_programming_errors_are_not_swallowed():
    call = Flaky([KeyError("bug")])
    with pytest.raises(KeyError):
        await with_retries(call, base_delay=0.001)
