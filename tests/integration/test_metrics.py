"""`/metrics` and a worker's `--metrics-port` (issue 14 §5): the installation's jobs,
objects, partitions and workers, storage latency by operation, refused logins; labels
bounded (no bucket names, keys or job ids)."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.mapi import REALM_TOKEN
from tests.support.s3 import put_many
from tests.support.services import free_port, wait_http


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_jobs_objects_workers_and_refused_logins(stack, admin, s3, bucket):
    await put_many(s3, bucket, ((f"m{i}", b"m" * 3) for i in range(25)))
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        before = _samples((await http.get("/metrics")).text)
        done = await admin.wait(
            (await admin.create("METRIC_RECONCILIATION", bucket))["jobId"]["id"]
        )
        assert done["jobState"] == "COMPLETE"
        refused = await http.post(REALM_TOKEN, data={"grant_type": "password", "username": "admin",
                                  "password": "not it", "client_id": "admin-cli"})  # fmt: skip
        assert refused.status_code == 401
        await asyncio.sleep(5.1)  # the installation's figures are read at most every 5 s
        answer = await http.get("/metrics")  # no token: Prometheus scrapes as it is
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    after = _samples(answer.text)
    key = {"type": "METRIC_RECONCILIATION"}
    grew = _value(after, "bucketjobs_jobs", state="COMPLETE", **key) - _value(
        before, "bucketjobs_jobs", state="COMPLETE", **key
    )
    assert grew == 1
    processed = _value(after, "bucketjobs_job_objects", outcome="processed", **key) - _value(
        before, "bucketjobs_job_objects", outcome="processed", **key
    )
    assert processed == 25
    assert _value(after, "bucketjobs_live_workers") >= 1
    assert ("bucketjobs_partitions", (("state", "queued"),)) in after
    failures = _value(after, "bucketjobs_login_failures_total") - _value(
        before, "bucketjobs_login_failures_total"
    )
    assert failures == 1
    assert bucket not in answer.text and str(done["jobId"]["id"]) not in answer.text


async def test_a_worker_serves_its_storage_latency_by_operation(stack, admin, s3, bucket):
    await put_many(s3, bucket, ((f"w{i}", b"w") for i in range(5)))
    port = free_port()
    stack.stop_workers()
    try:
        stack.start_worker(options=("--metrics-port", str(port)))
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{port}/metrics", 30)
        job = await admin.create("METRIC_RECONCILIATION", bucket)
        assert (await admin.wait(job["jobId"]["id"]))["jobState"] == "COMPLETE"
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    finally:
        stack.stop_workers()
        stack.start_worker()
    samples = _samples(text)
    listed = _value(samples, "bucketjobs_storage_request_seconds_count",
                    operation="ListObjectsV2", status="200")  # fmt: skip
    assert listed >= 1, [k for k in samples if k[0].startswith("bucketjobs_storage")]
    assert _value(samples, "process_resident_memory_bytes") > 0
    assert bucket not in text and "w0" not in text
