"""The SDK (bucketjobs.client) and the CLI client commands against a real server: log in,
create, list, watch, cancel, failures, log out (issue 14 §1, §2)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bucketjobs.client import AsyncClient, Client, JobState, MapiError
from tests.integration.test_triggers import _no_targets_left  # noqa: F401 - autouse here too
from tests.support.brokers import Webhook
from tests.support.s3 import put_many
from tests.support.services import free_port
from tests.support.stack import ADMIN_PASSWORD


async def test_the_async_client_runs_a_job_and_raises_the_apis_codes(stack, s3, bucket):
    await put_many(s3, bucket, ((f"k{i}", b"x" * i) for i in range(12)))
    async with AsyncClient(stack.base_url) as api:
        with pytest.raises(MapiError) as refused:
            await api.login("admin", "wrong password")
        assert refused.value.status == 401
        await api.login("admin", ADMIN_PASSWORD)
        job = await api.create("METRIC_RECONCILIATION", bucket)
        assert job.jobType == "METRIC_RECONCILIATION" and job.bucketName == bucket
        while not (job := await api.status(job.jobId.id)).jobState.terminal:
            pass
        assert job.jobState is JobState.COMPLETE
        assert job.result is not None and job.result["metrics"]["objectCount"] == 12
        listed = [j.jobId.id async for j in api.jobs(bucket=bucket, page_size=1)]
        assert listed == [job.jobId.id]  # one page of one, then none: pages are followed
        with pytest.raises(MapiError) as missing:
            await api.status(2_000_000_000)
        assert missing.value.code == "JOB_NOT_FOUND" and missing.value.status == 404
        with pytest.raises(MapiError) as bad:
            await api.create("NO_SUCH_TYPE", bucket)
        assert bad.value.code == "INVALID_REQUEST" and "NO_SUCH_TYPE" in bad.value.message
        # Failures, followed across pages: a live webhook and a dead one bound to the bucket.
        hook, refusing = Webhook(), Webhook()
        refusing.fail_with = 403  # refused for good: failures without a retry's wait
        await hook.start()
        await refusing.start()
        try:
            live = await _webhook_target(api, f"live-{bucket}", hook.url)
            dead = await _webhook_target(api, f"dead-{bucket}", refusing.url)
            await _bind(api, bucket, live, dead)
            trig = await api.create("TRIGGER_RECONCILIATION", bucket, failureThreshold="100")
            while not (trig := await api.status(trig.jobId.id)).jobState.terminal:
                await asyncio.sleep(0.2)
        finally:
            await hook.stop()
            await refusing.stop()
        assert trig.jobState is JobState.COMPLETE and trig.jobStats.failed == 12, trig
        failed = [f async for f in api.failures(trig.jobId.id, page_size=5)]
        assert [f.key for f in failed] == sorted(f"k{i}" for i in range(12))
        assert all(f.errorCode == "DeliveryFailed" and dead in f.message for f in failed)
        await _bind(api, bucket)
        # A session resumed from its refresh token alone gets a new access token itself.
        again = AsyncClient(stack.base_url, refresh_token=api.refresh_token)
        assert (await again.status(job.jobId.id)).jobId == job.jobId
        await again.logout()
        await again.aclose()


def _dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/gone"


async def _webhook_target(api: AsyncClient, name: str, url: str) -> str:
    body = {"name": name, "type": "WEBHOOK", "config": {"url": url}}
    return str((await api.call("/notification/target/create", body))["target"]["id"])


async def _bind(api: AsyncClient, bucket: str, *targets: str) -> None:
    bindings = [{"targetId": t, "events": ["s3:ObjectCreated:*"]} for t in targets]
    await api.call("/notification/bucket/set", {"bucketName": bucket, "bindings": bindings})


def _cli(home: Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(home), "COLUMNS": "160",
           **kwargs.pop("env", {})}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "bucketjobs.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=120, **kwargs)  # fmt: skip


def test_the_cli_logs_in_runs_watches_cancels_and_logs_out(stack, tmp_path, bucket):
    home = tmp_path / "config"
    assert _cli(home, "jobs", "list").returncode == 1  # not logged in: one line
    wrong = _cli(home, "login", stack.base_url, "--user", "admin", input="nope\n")
    assert wrong.returncode == 1 and wrong.stderr.count("\n") == 1, wrong.stderr
    assert "wrong user or password" in wrong.stderr and "Traceback" not in wrong.stderr

    done = _cli(home, "login", stack.base_url, "--user", "admin",
                env={"BUCKETJOBS_PASSWORD": ADMIN_PASSWORD})  # fmt: skip
    assert done.returncode == 0, done.stderr
    session = home / "bucketjobs" / "session.json"
    assert stat.S_IMODE(session.stat().st_mode) == 0o600
    assert ADMIN_PASSWORD not in session.read_text()

    created = _cli(home, "jobs", "create", "METRIC_RECONCILIATION", bucket, "--json")
    assert created.returncode == 0, created.stderr
    job_id = json.loads(created.stdout)["jobId"]["id"]
    watched = _cli(home, "jobs", "watch", str(job_id), "--json")
    assert watched.returncode == 0, watched.stderr
    assert json.loads(watched.stdout)["jobState"] == "COMPLETE"
    table = _cli(home, "jobs", "list", "--bucket", bucket, "--type", "METRIC_RECONCILIATION")
    assert table.returncode == 0 and str(job_id) in table.stdout and "COMPLETE" in table.stdout
    status = json.loads(_cli(home, "jobs", "status", str(job_id), "--json").stdout)
    assert status["jobId"]["id"] == job_id and status["result"]["metrics"]["objectCount"] == 0

    # A job that fails: watch says so with exit status 3; its failures are listed.
    failing = _cli(home, "jobs", "create", "BATCH_REPLICATE", "no-such-bucket-xyz",
                   "-p", "destinationBucket=elsewhere")  # fmt: skip
    assert failing.returncode == 1 and failing.stderr.count("\n") == 1, failing.stderr
    assert "Traceback" not in failing.stderr
    bad = _cli(home, "jobs", "create", "METRIC_RECONCILIATION", bucket, "-p", "novalue")
    assert bad.returncode == 2 and "key=value" in bad.stderr
    missing = _cli(home, "jobs", "status", "2000000000")
    assert missing.returncode == 1 and "JOB_NOT_FOUND" in missing.stderr

    listed_json = json.loads(_cli(home, "jobs", "list", "--json", "--limit", "1").stdout)
    assert len(listed_json) == 1
    failures = _cli(home, "jobs", "failures", str(job_id), "--json")
    assert failures.returncode == 0 and json.loads(failures.stdout) == []

    out = _cli(home, "logout")
    assert out.returncode == 0 and not session.exists()
    assert _cli(home, "jobs", "list").returncode == 1


def test_watch_exits_3_when_the_job_fails_and_4_when_it_is_cancelled(stack, tmp_path, bucket):
    home = tmp_path / "config"
    env = {"BUCKETJOBS_PASSWORD": ADMIN_PASSWORD}
    assert _cli(home, "login", stack.base_url, "-u", "admin", env=env).returncode == 0
    # The bucket's only target never answers: a job probes it for ~8 s, then fails.
    with Client(stack.base_url) as api:
        api.login("admin", ADMIN_PASSWORD)
        body = {"name": f"gone-{bucket}", "type": "WEBHOOK", "config": {"url": _dead_url()}}
        dead = str(api.call("/notification/target/create", body)["target"]["id"])
        api.call("/notification/bucket/set", {"bucketName": bucket, "bindings": [
            {"targetId": dead, "events": ["s3:ObjectCreated:*"]}]})  # fmt: skip
        stopped = api.create("TRIGGER_RECONCILIATION", bucket).jobId.id
        assert api.cancel(stopped).jobState is JobState.CANCELLED
        doomed = api.create("TRIGGER_RECONCILIATION", bucket).jobId.id
    watched = _cli(home, "jobs", "watch", str(stopped))
    assert watched.returncode == 4, watched.stdout + watched.stderr
    watched = _cli(home, "jobs", "watch", str(doomed), "--json")
    assert watched.returncode == 3, watched.stdout + watched.stderr
    ended = json.loads(watched.stdout)
    assert ended["jobState"] == "FAILED" and f"gone-{bucket}" in ended["message"]
    with Client(stack.base_url) as api:
        api.login("admin", ADMIN_PASSWORD)
        api.call("/notification/bucket/set", {"bucketName": bucket, "bindings": []})
        api.call("/notification/target/delete", {"id": dead})


async def test_watch_in_a_terminal_shows_a_live_bar_then_the_result(stack, tmp_path, s3, bucket):
    """`jobs watch` under tmux, read back as a person sees it: a bar with counts while the
    job runs, then the final table."""
    await put_many(s3, bucket, ((f"w{i:03d}", b"w") for i in range(160)))
    home = tmp_path / "config"
    env = {"BUCKETJOBS_PASSWORD": ADMIN_PASSWORD}
    assert (await asyncio.to_thread(_cli, home, "login", stack.base_url, "-u", "admin",
                                    env=env)).returncode == 0  # fmt: skip
    hook = Webhook()
    hook.delay = 0.25  # 160 deliveries, 16 at a time: ~2.5 s
    await hook.start()
    session = f"watch-{os.getpid()}"
    try:
        async with AsyncClient(stack.base_url) as api:
            await api.login("admin", ADMIN_PASSWORD)
            target = await _webhook_target(api, f"slow-{bucket}", hook.url)
            await _bind(api, bucket, target)
            job = await api.create("TRIGGER_RECONCILIATION", bucket)
            command = (f"XDG_CONFIG_HOME={home} {sys.executable} -m bucketjobs.cli.main jobs"
                       f" watch -- {job.jobId.id}; echo EXIT=$?; sleep 30")  # fmt: skip
            await asyncio.to_thread(subprocess.run, ["tmux", "new-session", "-d", "-s", session,
                                    "-x", "150", "-y", "30", command], check=True)  # fmt: skip
            screens = []
            for _ in range(200):
                shown = await asyncio.to_thread(subprocess.run, ["tmux", "capture-pane", "-p",
                                                "-t", session], capture_output=True, text=True)  # fmt: skip
                screens.append(shown.stdout)
                if "EXIT=" in shown.stdout:
                    break
                await asyncio.sleep(0.1)
            await _bind(api, bucket)
    finally:
        await asyncio.to_thread(subprocess.run, ["tmux", "kill-session", "-t", session])
        await hook.stop()
    final = screens[-1]
    assert "EXIT=0" in final, final
    assert "COMPLETE" in final and "160" in final, final
    live = [s for s in screens if "objects" in s and "obj/s" in s]
    assert live, screens[:3]
    # One page: the planner counts its 160 objects when their deliveries are done, so the
    # bar shows the job and its state until the end.
    assert any(f"job {job.jobId.id} " in s and " objects" in s for s in live), live[-1]
