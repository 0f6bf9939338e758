"""Logs (issue 14 §6): JSON lines off a terminal, the request id on the API's lines (and in
its answers), the job id on a worker's, and no secret anywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.support.mapi import REALM_TOKEN
from tests.support.services import Process
from tests.support.stack import ADMIN_PASSWORD
from tests.support.waiting import wait_until


def _lines(log: Path) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


async def test_an_api_line_carries_the_request_id_its_answer_names(stack):
    form = {"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD,
            "client_id": "admin-cli"}  # fmt: skip
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        first = (await http.post(REALM_TOKEN, data=form)).json()["refresh_token"]
        again = {"grant_type": "refresh_token", "refresh_token": first, "client_id": "admin-cli"}
        assert (await http.post(REALM_TOKEN, data=again)).status_code == 200
        # The same refresh token twice: the session ends, and the API says so in its log.
        reused = await http.post(REALM_TOKEN, data=again, headers={"X-Request-ID": "probe-42.a"})
        assert reused.status_code == 401 and reused.headers["x-request-id"] == "probe-42.a"
        odd = await http.get("/healthz", headers={"X-Request-ID": "not <sane> " + "x" * 80})
        assert len(odd.headers["x-request-id"]) == 16, odd.headers  # a new one instead
        wrong = {**form, "password": "hunter2-not-it"}
        assert (await http.post(REALM_TOKEN, data=wrong)).status_code == 401

    def mine() -> list[dict[str, Any]]:  # other tests' reuse warnings carry their own ids
        return [x for x in _lines(stack.api.log)
                if "presented twice" in x.get("event", "") and x.get("request_id") == "probe-42.a"]  # fmt: skip

    async def logged() -> bool:
        return bool(mine())

    await wait_until(logged, timeout=10, what="the reuse warning of this request in the log")
    line = mine()[0]
    assert line["level"] == "warning", line
    assert {"timestamp", "logger"} <= line.keys()
    text = stack.api.log.read_text(errors="replace")
    assert "hunter2-not-it" not in text and ADMIN_PASSWORD not in text and first not in text


async def test_a_worker_line_carries_its_job_id(stack, admin, s3, bucket, tmp_path):
    await s3.put_object(Bucket=bucket, Key="one", Body=b"1")
    log = tmp_path / "info-worker.log"
    args = ["worker", "--database-url", stack.database_url, "--data-dir", str(stack.data_dir)]
    stack.stop_workers()
    worker = Process(args, {"BUCKETJOBS_LOG_LEVEL": "INFO"}, log)
    try:
        job = await admin.create("METRIC_RECONCILIATION", bucket)
        job_id = job["jobId"]["id"]
        assert (await admin.wait(job_id))["jobState"] == "COMPLETE"

        async def logged() -> bool:
            return any(x.get("job_id") == job_id for x in _lines(log))

        await wait_until(logged, timeout=10, what="a worker line naming the job")
    finally:
        worker.stop()
        stack.start_worker()
    mine = [x for x in _lines(log) if x.get("job_id") == job_id]
    assert any(x["event"] == "plan_task done" and x["step"] == "plan_task" for x in mine), mine
