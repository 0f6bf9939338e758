"""Transient storage faults are retried: with 10 % of requests failing (503 SlowDown, 500,
connection resets) a job still ends COMPLETE with exact numbers and failed = 0."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.mapi import Mapi
from tests.support.s3 import put_many
from tests.support.services import Process, free_port, wait_http
from tests.support.stack import ADMIN_PASSWORD


@pytest.fixture
async def faulty_stack(tmp_path, store, postgres_url):
    """An API and worker whose primary store is SeaweedFS behind the fault proxy. A separate
    database, so the proxy endpoint does not become the suite's primary component."""
    import psycopg

    name = f"faults_{free_port()}"
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        await conn.execute(f"CREATE DATABASE {name}")
    url = postgres_url.replace("/postgres?", f"/{name}?")
    proxy = FaultProxy(store.endpoint, seed=7)
    endpoint = await proxy.start()
    port = free_port()
    common = ["--database-url", url, "--data-dir", str(tmp_path)]
    api = Process(
        ["serve", "--no-worker", "--port", str(port), *common, "--s3-endpoint", endpoint,
         "--s3-access-key", store.access_key, "--s3-secret-key", store.secret_key],
        {"BUCKETJOBS_ADMIN_PASSWORD": ADMIN_PASSWORD}, tmp_path / "api.log",
    )  # fmt: skip
    try:
        # In a thread: the proxy answers on this event loop, which must keep running.
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{port}/healthz", proc=api)
        worker = Process(["worker", *common], {}, tmp_path / "worker.log")
        yield f"http://127.0.0.1:{port}", proxy
        worker.stop()
    finally:
        api.stop()
        await proxy.stop()


async def test_ten_percent_transient_faults_change_nothing(faulty_stack, s3, bucket):
    base_url, proxy = faulty_stack
    await put_many(s3, bucket, ((f"f/{i:05d}", b"f" * (i % 9)) for i in range(8000)))
    admin = Mapi(base_url, "admin", ADMIN_PASSWORD)
    try:
        proxy.transient_rate = 0.10
        job = await admin.create("METRIC_RECONCILIATION", bucket)
        done = await admin.wait(job["jobId"]["id"], timeout=120)
    finally:
        proxy.transient_rate = 0.0
        await admin.close()
    assert done["jobState"] == "COMPLETE", done["message"]
    assert done["jobStats"]["failed"] == 0
    assert done["result"]["metrics"]["objectCount"] == 8000
    assert done["result"]["metrics"]["bytes"] == sum(i % 9 for i in range(8000))
    assert sum(proxy.injected.values()) >= 1, proxy.injected
