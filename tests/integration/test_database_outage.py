"""PostgreSQL stopped and restarted mid-job: the API answers 503, the job completes exactly.

Runs on a private PostgreSQL so the rest of the suite keeps its database.
"""

from __future__ import annotations

import asyncio

import pytest

from bucketjobs.db.embedded import EmbeddedPostgres
from tests.support.mapi import Mapi
from tests.support.s3 import put_many
from tests.support.services import Process, free_port, wait_http
from tests.support.stack import ADMIN_PASSWORD
from tests.support.waiting import progress, wait_until


@pytest.fixture
def private_stack(tmp_path, store):
    postgres = EmbeddedPostgres(tmp_path / "pg")
    url = postgres.start()
    port = free_port()
    common = ["--database-url", url, "--data-dir", str(tmp_path)]
    api = Process(
        ["serve", "--no-worker", "--port", str(port), *common, "--s3-endpoint", store.endpoint,
         "--s3-access-key", store.access_key, "--s3-secret-key", store.secret_key],
        {"BUCKETJOBS_ADMIN_PASSWORD": ADMIN_PASSWORD}, tmp_path / "api.log",
    )  # fmt: skip
    wait_http(f"http://127.0.0.1:{port}/healthz", proc=api)
    worker = Process(["worker", *common], {}, tmp_path / "worker.log")
    yield f"http://127.0.0.1:{port}", postgres
    worker.stop()
    api.stop()
    postgres.stop()


async def test_database_outage_mid_job(private_stack, s3, bucket):
    base_url, postgres = private_stack
    await put_many(s3, bucket, ((f"o/{i:05d}", b"o" * (i % 4)) for i in range(12000)))
    admin = Mapi(base_url, "admin", ADMIN_PASSWORD)
    try:
        job = await admin.create("METRIC_RECONCILIATION", bucket, rateLimit=2000)
        job_id = job["jobId"]["id"]
        await progress(admin, job_id)

        postgres.stop()
        during = await admin.http.post(
            "/mapi/v1/jobs/status",
            json={"jobId": {"id": job_id}},
            headers={"Authorization": f"Bearer {admin.token}", **await admin.csrf_headers()},
        )
        assert during.status_code == 503, during.text
        assert during.json()["code"] == "UNAVAILABLE"
        assert (await admin.http.get("/healthz")).status_code == 503
        # Prometheus still gets this process's figures, and the database's state, not a 503.
        scrape = await asyncio.wait_for(admin.http.get("/metrics"), 10)
        assert scrape.status_code == 200, scrape.text
        assert "bucketjobs_database_up 0.0" in scrape.text
        assert "process_cpu_seconds_total" in scrape.text
        assert "bucketjobs_jobs{" not in scrape.text  # no stale installation figures
        await asyncio.sleep(3)
        postgres.start()

        done = await admin.wait(job_id, timeout=120)

        async def database_up() -> bool:  # at the next snapshot (SNAPSHOT_SECONDS)
            return "bucketjobs_database_up 1.0" in (await admin.http.get("/metrics")).text

        await wait_until(database_up, timeout=15, interval=0.5, what="database_up 1 again")
    finally:
        await admin.close()
    assert done["jobState"] == "COMPLETE", done["message"]
    assert done["result"]["metrics"]["objectCount"] == 12000
    assert done["result"]["metrics"]["bytes"] == sum(i % 4 for i in range(12000))
    assert done["jobStats"]["processed"] == done["jobStats"]["total"] == 12000
