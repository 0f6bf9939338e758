"""The blocking SDK: the async client run on a private event loop, call by call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any, TypeVar

from bucketjobs.client.aio import AsyncClient
from bucketjobs.jobs.wire import Job, ObjectFailure

T = TypeVar("T")


class Client:
    """The same calls as AsyncClient, blocking: `with Client(url) as c: c.login(...)`.
    Not for use inside a running event loop (use AsyncClient there)."""

    def __init__(
        self,
        base_url: str,
        *,
        refresh_token: str | None = None,
        access_token: str | None = None,
        access_expires: float = 0.0,
        verify: bool | str = True,
        timeout: float = 30.0,
    ) -> None:
        self._runner = asyncio.Runner()
        options = {
            "refresh_token": refresh_token,
            "access_token": access_token,
            "access_expires": access_expires,
            "verify": verify,
            "timeout": timeout,
        }
        self._async = self._runner.run(_make(base_url, options))

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._runner.run(self._async.aclose())
        self._runner.close()

    @property
    def refresh_token(self) -> str | None:
        return self._async.refresh_token

    @property
    def access(self) -> tuple[str | None, float]:
        return self._async.access

    def login(self, username: str, password: str) -> None:
        self._runner.run(self._async.login(username, password))

    def renew(self) -> None:
        self._runner.run(self._async.renew())

    def logout(self) -> None:
        self._runner.run(self._async.logout())

    def call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._runner.run(self._async.call(path, body))

    def create(self, job_type: str, bucket: str, **params: Any) -> Job:
        return self._runner.run(self._async.create(job_type, bucket, **params))

    def status(self, job_id: int) -> Job:
        return self._runner.run(self._async.status(job_id))

    def cancel(self, job_id: int) -> Job:
        return self._runner.run(self._async.cancel(job_id))

    def jobs(self, **filters: Any) -> Iterator[Job]:
        return self._iterate(self._async.jobs(**filters))

    def events(self, job_id: int) -> Iterator[Job]:
        return self._iterate(self._async.events(job_id))

    def failures(self, job_id: int, *, page_size: int = 1000) -> Iterator[ObjectFailure]:
        return self._iterate(self._async.failures(job_id, page_size=page_size))

    def _iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        while True:
            try:
                yield self._runner.run(_next(items))
            except StopAsyncIteration:
                return


async def _make(base_url: str, options: dict[str, Any]) -> AsyncClient:
    """Made inside the runner's loop, which its connections then belong to."""
    return AsyncClient(base_url, **options)


async def _next(items: AsyncIterator[T]) -> T:
    return await items.__anext__()
