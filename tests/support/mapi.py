"""A test and bench helper: an async MAPI session that logs in, fetches a CSRF pair per call
(as clients in the field do) and asserts every call succeeds. Not the SDK (bucketjobs.client)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

REALM_TOKEN = "/ui/auth/realms/vsp-object/protocol/openid-connect/token"
TERMINAL = frozenset({"COMPLETE", "FAILED", "CANCELLED"})


class Mapi:
    """One user's session against a bucketjobs (or any MAPI) endpoint."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30)
        self.username = username
        self.password = password
        self.token: str | None = None

    async def login(self) -> str:
        response = await self.http.post(
            REALM_TOKEN,
            data={
                "grant_type": "password",
                "username": self.username,
                "password": self.password,
                "client_id": "vsp-object-external-client",
            },
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        self.token = token
        return token

    async def csrf_headers(self) -> dict[str, str]:
        response = await self.http.get("/mapi/v1/csrf")
        response.raise_for_status()
        return {"X-XSRF-TOKEN": response.cookies["XSRF-TOKEN"]}

    async def post(
        self, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        if self.token is None:
            await self.login()
        for attempt in (1, 2):
            all_headers = {"Authorization": f"Bearer {self.token}", **await self.csrf_headers()}
            all_headers.update(headers or {})
            response = await self.http.post(f"/mapi/v1{path}", json=body, headers=all_headers)
            if response.status_code != 401 or "token expired" not in response.text or attempt == 2:
                return response
            await self.login()  # access tokens are short-lived: log in again once
        raise AssertionError("unreachable")

    async def ok(self, path: str, body: Any = None, **kw: Any) -> dict[str, Any]:
        response = await self.post(path, body, **kw)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def create(self, job_type: str, bucket: str, **params: Any) -> dict[str, Any]:
        body = {"jobType": job_type, "bucketName": bucket, "jobParams": params}
        return (await self.ok("/jobs/create", body))["jobStatus"]

    async def status(self, job_id: int) -> dict[str, Any]:
        return (await self.ok("/jobs/status", {"jobId": {"id": job_id}}))["status"]

    async def wait(
        self,
        job_id: int,
        timeout: float = 120,
        states: frozenset[str] = TERMINAL,
        interval: float = 0.1,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = await self.status(job_id)
            if job["jobState"] in states:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['jobState']}: {job}")
            await asyncio.sleep(interval)

    async def close(self) -> None:
        await self.http.aclose()
