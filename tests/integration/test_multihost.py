"""The multi-host path: `serve --no-worker` and two `worker` processes, each with its own data
directory (as on separate hosts), sharing jobs through a PostgreSQL server reached over TCP
with a password (Debian's package), not the embedded unix-socket one."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.fernet import Fernet

from tests.support.debian_pg import DebianPostgres
from tests.support.mapi import Mapi
from tests.support.objects import assert_same_objects
from tests.support.s3 import put_many
from tests.support.services import Process, free_port, wait_http
from tests.support.stack import ADMIN_PASSWORD


@pytest.fixture
async def hosts(tmp_path, store) -> AsyncIterator[tuple[Mapi, str]]:
    # Outside pytest's tmp tree: the `postgres` user must be able to reach its directory.
    server = DebianPostgres(Path(tempfile.mkdtemp(prefix="bj-debian-pg-")), free_port())
    url = await asyncio.to_thread(server.start)
    # Every host gets the installation's credential key by environment, not by a shared disk.
    env = {"BUCKETJOBS_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "BUCKETJOBS_SECRET_KEY": Fernet.generate_key().decode()}  # fmt: skip
    port = free_port()
    processes = [
        Process(
            ["serve", "--no-worker", "--port", str(port), "--data-dir", str(tmp_path / "api"),
             "--database-url", url, "--s3-endpoint", store.endpoint,
             "--s3-access-key", store.access_key, "--s3-secret-key", store.secret_key],
            env, tmp_path / "api.log",
        )
    ]  # fmt: skip
    try:
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{port}/healthz", proc=processes[0])
        for n in (1, 2):
            processes.append(Process(
                ["worker", "--database-url", url, "--data-dir", str(tmp_path / f"host{n}"),
                 "--no-inline", "--concurrency", "4"],
                env, tmp_path / f"worker{n}.log",
            ))  # fmt: skip
        client = Mapi(f"http://127.0.0.1:{port}", "admin", ADMIN_PASSWORD)
        yield client, url
        await client.close()
    finally:
        for process in reversed(processes):
            process.stop()
        await asyncio.to_thread(server.stop)
        shutil.rmtree(server.root, ignore_errors=True)


async def _done_by(url: str, job_id: int) -> set[str]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        rows = await conn.execute(
            "SELECT DISTINCT done_by FROM job_partitions WHERE job_id = %s", (job_id,)
        )
        return {row[0] for row in await rows.fetchall()}


async def test_two_worker_hosts_share_jobs_over_tcp_postgres(hosts, s3: Any, bucket: str):
    client, url = hosts
    await put_many(s3, bucket, ((f"m/{i:05d}", b"m" * (i % 5)) for i in range(12000)))
    job = await client.create("METRIC_RECONCILIATION", bucket)
    done = await client.wait(job["jobId"]["id"], timeout=180)
    assert done["jobState"] == "COMPLETE", done["message"]
    assert done["result"]["metrics"]["objectCount"] == 12000
    assert done["result"]["metrics"]["bytes"] == sum(i % 5 for i in range(12000))
    assert len(await _done_by(url, done["jobId"]["id"])) == 2

    dst = f"{bucket}-dst"
    await s3.create_bucket(Bucket=dst)
    copy = await client.create("BATCH_REPLICATE", bucket, destinationBucket=dst)
    copied = await client.wait(copy["jobId"]["id"], timeout=180)
    assert copied["jobState"] == "COMPLETE", copied["message"]
    assert copied["jobStats"]["processed"] == 12000
    assert len(await _done_by(url, copied["jobId"]["id"])) == 2
    await assert_same_objects(s3, bucket, s3, dst)
