"""Seeded chaos: `kill -9` of the whole `serve` tree (API and its worker), of a separate
worker, or of both, at random points of a job; after restarts every job ends exactly.

Short form in CI (2 kill points); the long form is
`BUCKETJOBS_CHAOS_KILLS=20 scripts/test tests/integration/test_chaos.py`
(`BUCKETJOBS_CHAOS_SEED` picks another repeatable sequence).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.brokers import RedisServer, decoded_events
from tests.support.mapi import Mapi
from tests.support.objects import assert_same_objects
from tests.support.s3 import put_many
from tests.support.services import Process, free_port, wait_http
from tests.support.stack import ADMIN_PASSWORD, Store

KILLS = int(os.environ.get("BUCKETJOBS_CHAOS_KILLS", "2"))
SEED = int(os.environ.get("BUCKETJOBS_CHAOS_SEED", "1"))
OBJECTS = 6000


class Cluster:
    """A private database, a `serve` (API + worker) and one more worker, restartable."""

    def __init__(self, root: Path, url: str, store: Store) -> None:
        self.root, self.url, self.store = root, url, store
        self.port = free_port()
        self.serve: Process | None = None
        self.worker: Process | None = None
        self.starts = 0

    def _log(self, name: str) -> Path:
        self.starts += 1
        return self.root / f"{name}-{self.starts}.log"

    def start_serve(self) -> None:
        self.serve = Process(
            ["serve", "--port", str(self.port), "--data-dir", str(self.root),
             "--database-url", self.url, "--s3-endpoint", self.store.endpoint,
             "--s3-access-key", self.store.access_key, "--s3-secret-key", self.store.secret_key],
            {"BUCKETJOBS_ADMIN_PASSWORD": ADMIN_PASSWORD}, self._log("serve"),
        )  # fmt: skip
        wait_http(f"http://127.0.0.1:{self.port}/healthz", proc=self.serve)

    def start_worker(self) -> None:
        # A short stall timeout: this worker finds the dead ones' steps within seconds.
        self.worker = Process(
            ["worker", "--database-url", self.url, "--data-dir", str(self.root),
             "--stalled-after", "4"],
            {}, self._log("worker"),
        )  # fmt: skip

    def kill(self, victim: str) -> None:
        if victim in ("serve", "both") and self.serve is not None:
            self.serve.kill()  # the whole process group: the API and its worker
        if victim in ("worker", "both") and self.worker is not None:
            self.worker.kill()

    def restart(self, victim: str) -> None:
        if victim in ("serve", "both"):
            self.start_serve()
        if victim in ("worker", "both"):
            self.start_worker()

    def stop(self) -> None:
        for process in (self.worker, self.serve):
            if process is not None:
                process.stop()


@pytest.fixture
async def cluster(tmp_path, store, postgres_url) -> AsyncIterator[Cluster]:
    name = f"chaos_{free_port()}"
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        await conn.execute(f"CREATE DATABASE {name}")
    running = Cluster(tmp_path, postgres_url.replace("/postgres?", f"/{name}?"), store)
    await asyncio.to_thread(running.start_serve)
    running.start_worker()
    yield running
    running.stop()


def _key(i: int) -> str:
    """Keys under seven prefixes and some beside them: the job enumerates eight shards."""
    return f"top-{i:05d}" if i % 50 == 0 else f"c{i % 7}/{i:05d}"


async def test_seeded_kill_points_leave_exact_results(cluster: Cluster, s3: Any, bucket: str):
    rng = random.Random(SEED)
    await put_many(s3, bucket, ((_key(i), b"c" * (i % 11)) for i in range(OBJECTS)))
    admin = Mapi(f"http://127.0.0.1:{cluster.port}", "admin", ADMIN_PASSWORD)
    try:
        for point in range(KILLS):
            kind = rng.choice(["BATCH_REPLICATE", "METRIC_RECONCILIATION"])
            victim = rng.choice(["serve", "worker", "both"])
            delay = rng.uniform(0.2, 3.0)
            params: dict[str, Any] = {"rateLimit": 1500}
            dst = f"{bucket}-k{point}"
            if kind == "BATCH_REPLICATE":
                await s3.create_bucket(Bucket=dst)
                params.update(destinationBucket=dst, replicationFilter="ALL")
            job = await admin.create(kind, bucket, **params)
            await asyncio.sleep(delay)
            cluster.kill(victim)
            await asyncio.to_thread(cluster.restart, victim)
            done = await admin.wait(job["jobId"]["id"], timeout=240)
            where = f"kill point {point} (seed {SEED}): {victim} after {delay:.2f}s of {kind}"
            assert done["jobState"] == "COMPLETE", (where, done["message"])
            assert done["jobStats"]["failed"] == 0, where
            if kind == "BATCH_REPLICATE":
                assert done["jobStats"]["processed"] == OBJECTS, (where, done["jobStats"])
                await assert_same_objects(s3, bucket, s3, dst)
            else:
                assert done["result"]["metrics"]["objectCount"] == OBJECTS, where
                assert done["result"]["metrics"]["bytes"] == sum(i % 11 for i in range(OBJECTS))
        states = ["EXAMINING", "PROCESSING", "EXECUTING"]
        assert (await admin.ok("/jobs/list", {"jobStates": states}))["jobs"] == []
    finally:
        await admin.close()


async def test_a_killed_lifecycle_update_ends_with_the_same_survivors(
    cluster: Cluster, s3: Any, bucket: str
):
    """`kill -9` mid-run, then restart: deletes are idempotent, so the bucket ends as an
    uninterrupted run leaves it. Each deletion is counted at most once: objects a killed
    partition deleted before its commit are gone from the re-run's listing, so they are
    not counted (docs/DECISIONS.md)."""
    rng = random.Random(SEED + 1)
    await put_many(s3, bucket, ((_key(i), b"c" * (i % 11)) for i in range(OBJECTS)))
    expiring = [_key(i) for i in range(OBJECTS) if _key(i)[:2] in ("c0", "c2", "c5")]
    survivors = sorted(set(map(_key, range(OBJECTS))) - set(expiring))
    policy = {"Rules": [
        {"ID": p, "Status": "Enabled", "Filter": {"Prefix": f"{p}/"},
         "Expiration": {"Date": "2020-01-01T00:00:00Z"}} for p in ("c0", "c2", "c5")
    ]}  # fmt: skip
    admin = Mapi(f"http://127.0.0.1:{cluster.port}", "admin", ADMIN_PASSWORD)
    try:
        victim, delay = rng.choice(["serve", "worker", "both"]), rng.uniform(0.5, 2.5)
        job = await admin.create(
            "LIFECYCLE_UPDATE", bucket, lifecycleConfiguration=json.dumps(policy), rateLimit=1500
        )
        await asyncio.sleep(delay)
        cluster.kill(victim)
        await asyncio.to_thread(cluster.restart, victim)
        done = await admin.wait(job["jobId"]["id"], timeout=240)
        where = f"seed {SEED}: {victim} killed after {delay:.2f}s"
        assert done["jobState"] == "COMPLETE", (where, done["message"])
        assert 0 < done["jobStats"]["processed"] <= len(expiring), (where, done["jobStats"])
        assert done["result"]["expired"] == done["jobStats"]["processed"], where
        assert done["jobStats"]["failed"] == 0, where
        left = []
        async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            left += [item["Key"] for item in page.get("Contents", [])]
        assert sorted(left) == survivors, where
    finally:
        await admin.close()


async def test_a_killed_trigger_reconciliation_delivers_every_object_at_least_once(
    cluster: Cluster, s3: Any, bucket: str, tmp_path: Path
):
    """`kill -9` mid-run, then restart: partitions that had not committed are sent again,
    so a consumer sees every object at least once (some twice), and the job counts each
    object once."""
    rng = random.Random(SEED + 2)
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    await put_many(s3, bucket, ((_key(i), b"t") for i in range(OBJECTS)))
    admin = Mapi(f"http://127.0.0.1:{cluster.port}", "admin", ADMIN_PASSWORD)
    try:
        target = await admin.ok("/notification/target/create", {
            "name": "chaos", "type": "REDIS",
            "config": {"url": redis_server.url, "mode": "STREAM", "key": "events"}})  # fmt: skip
        await admin.ok("/notification/bucket/set", {"bucketName": bucket, "bindings": [
            {"targetId": target["target"]["id"], "events": ["s3:ObjectCreated:*"]}]})  # fmt: skip
        victim, delay = rng.choice(["serve", "worker", "both"]), rng.uniform(0.5, 2.5)
        job = await admin.create("TRIGGER_RECONCILIATION", bucket, rateLimit=1500)
        await asyncio.sleep(delay)
        cluster.kill(victim)
        await asyncio.to_thread(cluster.restart, victim)
        done = await admin.wait(job["jobId"]["id"], timeout=240)
        where = f"seed {SEED}: {victim} killed after {delay:.2f}s"
        assert done["jobState"] == "COMPLETE", (where, done["message"])
        assert done["jobStats"]["processed"] == OBJECTS, (where, done["jobStats"])
        assert done["jobStats"]["failed"] == 0, where
        with redis_server.client() as client:
            bodies = [fields[b"event"] for _, fields in client.xrange("events")]
        seen = {r["s3"]["object"]["decodedKey"] for r in decoded_events(bodies)}
        assert seen == {_key(i) for i in range(OBJECTS)}, where
        assert len(bodies) >= OBJECTS, where
    finally:
        await admin.close()
        redis_server.stop()
