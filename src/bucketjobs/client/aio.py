"""The async SDK: one user's session against a bucketjobs (or any VSP One MAPI) endpoint.

It logs in with the password grant, refreshes the access token before it expires (and once
more if the server says it has), keeps one CSRF pair until shortly before its expiry (the
API accepts a pair for an hour), and raises MapiError carrying the API's `code`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import httpx

from bucketjobs.client.errors import MapiError, NotLoggedIn
from bucketjobs.jobs.wire import Job, ObjectFailure

REALM_TOKEN = "/ui/auth/realms/vsp-object/protocol/openid-connect/token"
REALM_LOGOUT = "/ui/auth/realms/vsp-object/protocol/openid-connect/logout"
CLIENT_ID = "vsp-object-external-client"
EARLY = 30.0  # seconds before an access token's expiry that it is refreshed
CSRF_LIFETIME = 3000.0  # seconds a CSRF pair is reused (the server's last 3,600)


class AsyncClient:
    """`AsyncClient(url)`, then `await login(user, password)`, or resume an earlier
    session with its `refresh_token` (and its access token, valid until `access_expires`,
    a Unix time); `verify` is httpx's: True, False, or a CA bundle's path."""

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
        self.base_url = base_url.rstrip("/")
        self.http = httpx.AsyncClient(base_url=self.base_url, verify=verify, timeout=timeout)
        self.refresh_token = refresh_token
        self._access = access_token
        self._access_until = time.monotonic() + access_expires - time.time() - EARLY
        self._csrf: str | None = None
        self._csrf_until = 0.0

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    # Session

    @property
    def access(self) -> tuple[str | None, float]:
        """The current access token and when it expires (Unix time), to resume with."""
        return self._access, time.time() + self._access_until + EARLY - time.monotonic()

    async def login(self, username: str, password: str) -> None:
        await self._token({"grant_type": "password", "username": username, "password": password})

    async def logout(self) -> None:
        """End the session on the server (its refresh token stops working)."""
        if self.refresh_token is not None:
            form = {"client_id": CLIENT_ID, "refresh_token": self.refresh_token}
            response = await self.http.post(REALM_LOGOUT, data=form)
            if response.status_code not in (204, 400):  # 400: already ended
                raise _error(response)
        self.refresh_token = self._access = None

    async def _token(self, form: dict[str, str]) -> None:
        response = await self.http.post(REALM_TOKEN, data={"client_id": CLIENT_ID, **form})
        if response.status_code != 200:
            raise _error(response)
        tokens = response.json()
        self._access = str(tokens["access_token"])
        self._access_until = time.monotonic() + float(tokens.get("expires_in", 60)) - EARLY
        self.refresh_token = str(tokens.get("refresh_token") or self.refresh_token)

    async def renew(self) -> None:
        """A new access token now (the refresh token rotates with it)."""
        await self._bearer(renew=True)

    async def _bearer(self, renew: bool = False) -> str:
        if renew or self._access is None or time.monotonic() >= self._access_until:
            if self.refresh_token is None:
                raise NotLoggedIn
            await self._token({"grant_type": "refresh_token", "refresh_token": self.refresh_token})
        assert self._access is not None
        return self._access

    async def _csrf_header(self, renew: bool = False) -> str:
        if renew or self._csrf is None or time.monotonic() >= self._csrf_until:
            response = await self.http.get("/mapi/v1/csrf")
            if response.status_code != 200:
                raise _error(response)
            self._csrf = response.cookies["XSRF-TOKEN"]
            self._csrf_until = time.monotonic() + CSRF_LIFETIME
        return self._csrf

    async def call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST a MAPI route (`/jobs/status`, ...) and return its JSON answer. A 401 from an
        expired token or CSRF pair is retried once with new ones."""
        for attempt in (1, 2):
            headers = {
                "Authorization": f"Bearer {await self._bearer(renew=attempt == 2)}",
                "X-XSRF-TOKEN": await self._csrf_header(renew=attempt == 2),
            }
            response = await self.http.post(f"/mapi/v1{path}", json=body or {}, headers=headers)
            if response.status_code == 200:
                answer: dict[str, Any] = response.json()
                return answer
            if response.status_code != 401 or attempt == 2:
                raise _error(response)
        raise AssertionError("unreachable")

    # Jobs

    async def create(self, job_type: str, bucket: str, **params: Any) -> Job:
        body = {"jobType": job_type, "bucketName": bucket, "jobParams": params}
        return Job.model_validate((await self.call("/jobs/create", body))["jobStatus"])

    async def status(self, job_id: int) -> Job:
        answer = await self.call("/jobs/status", {"jobId": {"id": job_id}})
        return Job.model_validate(answer["status"])

    async def cancel(self, job_id: int) -> Job:
        answer = await self.call("/jobs/cancel", {"jobId": {"id": job_id}})
        return Job.model_validate(answer["status"])

    async def jobs(
        self,
        *,
        states: list[str] | None = None,
        job_type: str | None = None,
        bucket: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Job]:
        """Every job the caller may see that matches, newest first, page by page."""
        body: dict[str, Any] = {"pageSize": page_size}
        if states:
            body["jobStates"] = states
        if job_type:
            body["jobType"] = job_type
        if bucket:
            body["bucketName"] = bucket
        async for item in self._pages("/jobs/list", body, "jobs"):
            yield Job.model_validate(item)

    async def events(self, job_id: int) -> AsyncIterator[Job]:
        """The job as it is, then at each change, until its terminal state (the API's
        Server-Sent Events stream, `jobs/events`)."""
        headers = {"Authorization": f"Bearer {await self._bearer()}"}
        params = {"jobId": str(job_id)}
        timeout = httpx.Timeout(30.0, read=60.0)  # the server pings every 15 s
        async with self.http.stream("GET", "/mapi/v1/jobs/events", params=params,
                                    headers=headers, timeout=timeout) as answer:  # fmt: skip
            if answer.status_code != 200:
                await answer.aread()
                raise _error(answer)
            async for line in answer.aiter_lines():
                if line.startswith("data: "):
                    yield Job.model_validate_json(line[6:])

    async def failures(self, job_id: int, *, page_size: int = 1000) -> AsyncIterator[ObjectFailure]:
        """The objects a job failed on, in key order, page by page."""
        body = {"jobId": {"id": job_id}, "pageSize": page_size}
        async for item in self._pages("/jobs/failures", body, "failures"):
            yield ObjectFailure.model_validate(item)

    async def _pages(
        self, path: str, body: dict[str, Any], name: str
    ) -> AsyncIterator[dict[str, Any]]:
        while True:
            answer = await self.call(path, body)
            for item in answer[name]:
                yield item
            if not answer.get("pageToken"):
                return
            body = {**body, "pageToken": answer["pageToken"]}


def _error(response: httpx.Response) -> MapiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    return MapiError.from_body(response.status_code, body)
