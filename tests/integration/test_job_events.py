"""`GET /mapi/v1/jobs/events?jobId=N` (issue 14 §3): a snapshot, then each change, until the
job's terminal state; the token rules of every route; other users' jobs are not found."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import httpx

from bucketjobs.client import AsyncClient
from tests.integration.test_triggers import _no_targets_left  # noqa: F401 - autouse here too
from tests.support.brokers import Webhook
from tests.support.s3 import put_many
from tests.support.stack import ADMIN_PASSWORD


async def _events(http: httpx.AsyncClient, job_id: int, token: str) -> list[dict[str, Any]]:
    seen = []
    headers = {"Authorization": f"Bearer {token}"}
    async with http.stream("GET", "/mapi/v1/jobs/events", params={"jobId": job_id},
                           headers=headers) as answer:  # fmt: skip
        assert answer.status_code == 200, await answer.aread()
        assert answer.headers["content-type"].startswith("text/event-stream")
        event = None
        async for line in answer.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                assert event == "job"
                seen.append(json.loads(line[6:]))
    return seen


async def _token(api: AsyncClient) -> str:
    access, _ = api.access
    assert access is not None
    return access


async def test_a_stream_follows_a_job_to_its_end(stack, s3, bucket):
    await put_many(s3, bucket, ((f"e{i:03d}", b"e") for i in range(48)))
    hook = Webhook()
    hook.delay = 0.2  # 48 deliveries, 16 at a time: the job runs ~0.6 s or more
    await hook.start()
    try:
        async with (
            AsyncClient(stack.base_url) as api,
            httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http,
        ):
            await api.login("admin", ADMIN_PASSWORD)
            body = {"name": f"sse-{bucket}", "type": "WEBHOOK", "config": {"url": hook.url}}
            target = (await api.call("/notification/target/create", body))["target"]["id"]
            await api.call("/notification/bucket/set", {"bucketName": bucket, "bindings": [
                {"targetId": target, "events": ["s3:ObjectCreated:*"]}]})  # fmt: skip
            job = await api.create("TRIGGER_RECONCILIATION", bucket)
            events = await _events(http, job.jobId.id, await _token(api))
            await api.call("/notification/bucket/set", {"bucketName": bucket, "bindings": []})
    finally:
        await hook.stop()
    assert events[0]["jobId"]["id"] == job.jobId.id
    assert events[-1]["jobState"] == "COMPLETE" and events[-1]["jobStats"]["processed"] == 48
    states = [e["jobState"] for e in events]
    assert states.index("COMPLETE") == len(states) - 1  # the stream ends at the end
    assert all(a != b for a, b in itertools.pairwise(events))  # changes only


async def test_a_finished_job_streams_its_snapshot_and_ends(stack, admin, bucket):
    job = await admin.create("METRIC_RECONCILIATION", bucket)
    done = await admin.wait(job["jobId"]["id"])
    async with (
        AsyncClient(stack.base_url) as api,
        httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http,
    ):
        await api.login("admin", ADMIN_PASSWORD)
        events = await asyncio.wait_for(_events(http, done["jobId"]["id"], await _token(api)), 10)
        assert [e["jobState"] for e in events] == ["COMPLETE"]
        # No token: 401; a job the caller cannot see: 404; a bad id: 400 naming it.
        plain = await http.get("/mapi/v1/jobs/events", params={"jobId": done["jobId"]["id"]})
        assert plain.status_code == 401
        headers = {"Authorization": f"Bearer {await _token(api)}"}
        missing = await http.get("/mapi/v1/jobs/events", params={"jobId": 2_000_000_000},
                                 headers=headers)  # fmt: skip
        assert missing.status_code == 404 and missing.json()["code"] == "JOB_NOT_FOUND"
        for bad in ("x", "99999999999", "", "1\x00", "-" * 5000):
            refused = await http.get("/mapi/v1/jobs/events", params={"jobId": bad},
                                     headers=headers)  # fmt: skip
            assert refused.status_code == 400 and "jobId" in refused.json()["details"], bad


async def test_another_users_job_is_not_found(stack, admin, bucket):
    other = stack.add_user("sse-viewer", "user")
    await other.login()
    job = await admin.create("METRIC_RECONCILIATION", bucket)
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        answer = await http.get("/mapi/v1/jobs/events", params={"jobId": job["jobId"]["id"]},
                                headers={"Authorization": f"Bearer {other.token}"})  # fmt: skip
    await other.close()
    assert answer.status_code == 404
