"""Process-level behaviour: several workers on one job, serve on embedded defaults, TLS."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
from sqlalchemy import text

from tests.support.objects import keys
from tests.support.s3 import put_many
from tests.support.services import Process, free_port
from tests.support.stack import QUICK_RECOVERY
from tests.support.waiting import progress, wait_until


async def test_two_worker_processes_share_one_job_exactly(stack, admin, s3, bucket, db):
    """With --no-inline every partition is a queued task: two worker processes share them."""
    await put_many(s3, bucket, ((f"w/{i:05d}", b"q" * (i % 7)) for i in range(8000)))
    stack.stop_workers()
    try:
        for _ in range(2):
            stack.start_worker(4, inline=False)
        await asyncio.sleep(3)  # both workers registered before the job starts
        job = await admin.create("METRIC_RECONCILIATION", bucket, rateLimit=4000)
        done = await admin.wait(job["jobId"]["id"], timeout=120)
        # The deleting job takes the same queued path: partitions re-listed and acted on by
        # either worker, its dry-run sample kept across them.
        policy = json.dumps({"Rules": [{"ID": "odd", "Status": "Enabled",
                                        "Filter": {"ObjectSizeGreaterThan": 3},
                                        "Expiration": {"Date": "2020-01-01T00:00:00Z"}}]})  # fmt: skip
        preview = await admin.create(
            "LIFECYCLE_UPDATE", bucket, lifecycleConfiguration=policy, dryRun="true"
        )
        preview = await admin.wait(preview["jobId"]["id"], timeout=120)
        expire = await admin.create("LIFECYCLE_UPDATE", bucket, lifecycleConfiguration=policy)
        expired = await admin.wait(expire["jobId"]["id"], timeout=120)
    finally:
        stack.stop_workers()
        stack.start_worker()
    assert done["jobState"] == "COMPLETE", done
    metrics = done["result"]["metrics"]
    assert metrics["objectCount"] == 8000
    assert metrics["bytes"] == sum(i % 7 for i in range(8000))
    assert done["jobStats"]["processed"] == 8000
    async with db.connect() as conn:
        workers = (await conn.execute(
            text("SELECT count(DISTINCT done_by) FROM job_partitions WHERE job_id = :j"),
            {"j": done["jobId"]["id"]},
        )).scalar()  # fmt: skip
    assert workers == 2, "both worker processes ran partitions of the job"
    big = sorted((f"w/{i:05d}" for i in range(8000) if i % 7 > 3), key=str.encode)
    assert expired["jobState"] == "COMPLETE" and expired["jobStats"]["processed"] == len(big)
    same = {**expired["result"], "dryRun": True, "evaluationTime": None}
    assert {**preview["result"], "evaluationTime": None} == same
    affected = await admin.ok("/jobs/affected", {"jobId": preview["jobId"], "pageSize": 1000})
    assert [a["key"] for a in affected["affected"]] == big[:1000]
    left = await keys(s3, bucket)
    assert len(left) == 8000 - len(big) and not set(big) & set(left)


async def test_https_with_secure_cookies(stack, tmp_path, ca):
    cert, key = ca.cert, ca.key  # a certificate for 127.0.0.1 from the tests' private CA
    port = free_port()
    api = Process(
        ["serve", "--no-worker", "--port", str(port), "--data-dir", str(stack.data_dir),
         "--database-url", stack.database_url, "--s3-endpoint", stack.store.endpoint,
         "--s3-access-key", stack.store.access_key, "--s3-secret-key", stack.store.secret_key,
         "--tls-cert", str(cert), "--tls-key", str(key)],
        {}, tmp_path / "tls.log",
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(verify=ssl.create_default_context(cadata=ca.ca_pem)) as client:
            while True:
                try:
                    response = await client.get(f"https://127.0.0.1:{port}/mapi/v1/csrf")
                    break
                except httpx.HTTPError:
                    assert api.alive() and time.monotonic() < deadline, tmp_path.joinpath(
                        "tls.log"
                    ).read_text()
                    await asyncio.sleep(0.2)
        assert response.status_code == 200
        assert all("Secure" in c for c in response.headers.get_list("set-cookie"))
    finally:
        api.stop()


def _tree(pid: int) -> list[int]:
    try:
        parent = psutil.Process(pid)
        return [parent.pid, *(c.pid for c in parent.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def test_serve_on_embedded_defaults_and_sigterm_leaves_nothing(tmp_path):
    """`bucketjobs serve` with no store or database options: embedded PostgreSQL and SeaweedFS."""
    port = free_port()
    env = {**os.environ, "BUCKETJOBS_ADMIN_PASSWORD": ""}
    env.pop("BUCKETJOBS_ADMIN_PASSWORD")
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bucketjobs.cli.main", "serve", "--port", str(port)],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        # The ready line comes once the port is bound: the first request after it answers.
        deadline = time.monotonic() + 90
        while "bucketjobs API:" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        printed = log.read_text()
        assert f"http://127.0.0.1:{port}/mapi/v1" in printed
        assert "S3 endpoint:" in printed and "s3-credentials.json" in printed
        password = next(
            line.split()[2] for line in printed.splitlines() if line.startswith("admin password:")
        )
        creds = tmp_path / "bucketjobs-data" / "seaweedfs" / "s3-credentials.json"
        assert oct(creds.stat().st_mode & 0o777) == "0o600"
        token = httpx.post(
            f"http://127.0.0.1:{port}/ui/auth/realms/vsp-object/protocol/openid-connect/token",
            data={"grant_type": "password", "username": "admin", "password": password,
                  "client_id": "admin-cli"},
        )  # fmt: skip
        assert token.status_code == 200
        # Everything it started is its descendant: weed, postgres (via pg_ctl), the worker.
        started = {p.name() for p in psutil.process_iter() if _ours(p, tmp_path)}
        assert any("weed" in n for n in started) and any("postgres" in n for n in started)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    time.sleep(1)
    leftovers = [" ".join(_cmd(p)) for p in psutil.process_iter() if _ours(p, tmp_path)]
    assert leftovers == [], leftovers
    assert log.read_text().count(password) == 1, "the generated password is printed once"


def _ours(process: psutil.Process, root: Path) -> bool:
    """Started for a server whose data is under `root`: named on its command line, or (as
    PostgreSQL, which reaches its directory as /proc/self/cwd) running inside it."""
    if str(root) in " ".join(_cmd(process)):
        return True
    try:
        return process.cwd().startswith(str(root))
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _cmd(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []


async def test_killed_worker_loses_nothing(stack, admin, s3, bucket):
    """kill -9 of the only worker mid-job; a new worker recovers its stalled steps (after the
    heartbeat timeout) and the job ends with exact numbers."""
    await put_many(s3, bucket, ((f"k/{i:05d}", b"k" * (i % 3)) for i in range(6000)))
    stack.stop_workers()
    try:
        doomed = stack.start_worker(2, inline=False, options=QUICK_RECOVERY)
        job = await admin.create("METRIC_RECONCILIATION", bucket, rateLimit=1000)
        job_id = job["jobId"]["id"]
        await progress(admin, job_id, timeout=60)
        doomed.kill()
        stack.workers.remove(doomed)
        stack.start_worker(4, inline=False, options=QUICK_RECOVERY)
        done = await admin.wait(job_id, timeout=120)
    finally:
        stack.stop_workers()
        stack.start_worker()
    assert done["jobState"] == "COMPLETE", done["message"]
    assert done["result"]["metrics"]["objectCount"] == 6000
    assert done["result"]["metrics"]["bytes"] == sum(i % 3 for i in range(6000))
    assert done["jobStats"]["processed"] == done["jobStats"]["total"] == 6000


async def test_sigterm_hands_work_back(stack, admin, s3, bucket):
    """SIGTERM a worker mid-job: it stops within its grace period (--shutdown-timeout), its
    aborted step is queued again by the next worker's recovery sweep, and the job ends
    exactly."""
    objects = 6000  # at 1,000/s: still running when the worker has stopped, 2 s grace and all
    await put_many(s3, bucket, ((f"t/{i:05d}", b"t") for i in range(objects)))
    stack.stop_workers()
    try:
        first = stack.start_worker(2, options=(*QUICK_RECOVERY, "--shutdown-timeout", "2"))
        job = await admin.create("METRIC_RECONCILIATION", bucket, rateLimit=1000)
        job_id = job["jobId"]["id"]
        await progress(admin, job_id)
        started = time.monotonic()
        assert first.stop(timeout=30) is not None
        assert time.monotonic() - started < 12, "graceful shutdown outlived its 2 s grace"
        stack.workers.remove(first)
        partway = await admin.status(job_id)
        assert partway["jobState"] == "EXECUTING"
        assert 0 < partway["jobStats"]["processed"] < objects
        stack.start_worker(options=QUICK_RECOVERY)
        done = await admin.wait(job_id, timeout=120)
    finally:
        stack.stop_workers()
        stack.start_worker()
    assert done["jobState"] == "COMPLETE", done["message"]
    assert done["jobStats"]["processed"] == done["jobStats"]["total"] == objects
    assert done["result"]["metrics"]["objectCount"] == objects


async def test_worker_log_level_follows_the_environment(stack, tmp_path):
    """BUCKETJOBS_LOG_LEVEL reaches workers (it used to be fixed at WARNING); a bad level
    is refused by name."""
    log = tmp_path / "debug-worker.log"
    args = ["worker", "--database-url", stack.database_url, "--data-dir", str(stack.data_dir)]
    worker = Process(args, {"BUCKETJOBS_LOG_LEVEL": "debug"}, log)
    try:

        async def logged_debug() -> bool:
            return any(json.loads(line).get("level") == "debug"
                       for line in log.read_text().splitlines() if line.startswith("{"))  # fmt: skip

        await wait_until(logged_debug, timeout=30, what="a DEBUG line from the worker")
    finally:
        worker.stop()
    bad = Process(args, {"BUCKETJOBS_LOG_LEVEL": "LOUD"}, tmp_path / "bad.log")
    assert bad.proc.wait(30) != 0
    assert "BUCKETJOBS_LOG_LEVEL 'LOUD' is not a log level" in (tmp_path / "bad.log").read_text()
