"""BATCH_REPLICATE against real SeaweedFS: same store (server-side) and across endpoints."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest
from sqlalchemy import text

from bucketjobs.ops.replicate import PARTITION_BYTES
from bucketjobs.storage.copy import COPY_OBJECT_LIMIT, COPY_PART_SIZE
from tests.support.faultproxy import FaultProxy
from tests.support.objects import assert_same_objects, keys
from tests.support.s3 import put_many
from tests.support.stack import QUICK_RECOVERY, component_body
from tests.support.waiting import progress

MiB = 1024 * 1024
N = 5000
BIG = "media/big video.bin"

# Keys an operator's bucket really has: spaces, unicode, `+`, `%`, deep paths, empty objects.
SPECIAL = [
    "with space/file name.txt",
    "unicode/ünïcødé/日本語.txt",
    "plus+sign/a+b=c.txt",
    "percent/100%/x%2Fy.txt",
    "deep/" + "/".join(f"level{i}" for i in range(12)) + "/leaf.txt",
    "empty/zero-bytes",
    "tagged/and-meta.json",
]


def _plain(i: int) -> str:
    return f"plain/{i % 20:02d}/obj-{i:05d}"


def _body(i: int) -> bytes:
    return (f"object {i} ".encode() * ((i % 50) + 1))[: (i * 37) % 3000]


async def seed_source(s3: Any, bucket: str) -> list[str]:
    """N objects: plain ones, the special keys with headers, metadata and tags, one 64 MiB."""
    plain = N - len(SPECIAL) - 1
    await put_many(s3, bucket, ((_plain(i), _body(i)) for i in range(plain)))
    for n, key in enumerate(SPECIAL):
        await s3.put_object(
            Bucket=bucket, Key=key, Body=b"" if key.startswith("empty/") else f"special {n}".encode(),
            ContentType="application/x-special", CacheControl="max-age=60",
            ContentDisposition=f'attachment; filename="f{n}"', ContentLanguage="en",
            Metadata={"owner": f"team-{n}", "checksum-note": "kept"},
            Tagging=f"project=p{n}&tier=gold%20plus",
        )  # fmt: skip
    chunk = bytes(range(256)) * 4096  # 1 MiB, not compressible into a trivial pattern
    await s3.put_object(Bucket=bucket, Key=BIG, Body=chunk * 64, ContentType="video/mp4",
                        Metadata={"codec": "none"}, Tagging="size=big")  # fmt: skip
    return [*SPECIAL, BIG, _plain(0), _plain(plain - 13)]


@pytest.fixture(scope="module")
async def source(s3: Any) -> tuple[str, list[str]]:
    name = "replsrc-module"
    await s3.create_bucket(Bucket=name)
    return name, await seed_source(s3, name)


async def _run(admin: Any, bucket: str, timeout: float = 300, **params: Any) -> dict[str, Any]:
    job = await admin.create("BATCH_REPLICATE", bucket, **params)
    return await admin.wait(job["jobId"]["id"], timeout=timeout)


async def test_same_store_copy_is_exact_then_missing_skips_then_all_copies(
    admin, s3, source, bucket
):
    src, detailed = source
    done = await _run(admin, src, destinationBucket=bucket, replicationFilter="ALL")
    assert done["jobState"] == "COMPLETE", done["message"]
    stats = done["jobStats"]
    assert (stats["total"], stats["processed"], stats["failed"], stats["skipped"]) == (N, N, 0, 0)
    assert done["result"]["bytesCopied"] == stats["bytes"] > 64 * MiB
    assert done["result"]["versions"] == "current versions only"
    await assert_same_objects(s3, src, s3, bucket, detailed=detailed)

    again = await _run(admin, src, destinationBucket=bucket)  # MISSING is the default
    assert again["jobState"] == "COMPLETE", again["message"]
    assert (again["jobStats"]["processed"], again["jobStats"]["skipped"]) == (0, N)

    await s3.delete_object(Bucket=bucket, Key=SPECIAL[0])
    await s3.put_object(Bucket=bucket, Key=SPECIAL[1], Body=b"changed at the destination")
    healed = await _run(admin, src, destinationBucket=bucket, replicationFilter="MISSING")
    assert (healed["jobStats"]["processed"], healed["jobStats"]["skipped"]) == (2, N - 2)
    await assert_same_objects(s3, src, s3, bucket, detailed=SPECIAL[:2])

    everything = await _run(admin, src, destinationBucket=bucket, replicationFilter="ALL")
    assert everything["jobStats"]["processed"] == N


async def test_cross_endpoint_copy_with_prefix_is_exact(
    admin, s3, remote_s3, remote_component, source
):
    src, detailed = source
    dst = f"remote-{int(time.time() * 1000)}"
    await remote_s3.create_bucket(Bucket=dst)
    done = await _run(
        admin, src, destinationBucket=dst, destinationComponent=remote_component,
        destinationPrefix="copy/",
    )  # fmt: skip
    assert done["jobState"] == "COMPLETE", done["message"]
    assert (done["jobStats"]["processed"], done["jobStats"]["failed"]) == (N, 0)
    await assert_same_objects(s3, src, remote_s3, dst, dst_prefix="copy/", detailed=detailed)
    assert await keys(remote_s3, dst, "other") == {}

    again = await _run(
        admin, src, destinationBucket=dst, destinationComponent=remote_component,
        destinationPrefix="copy/",
    )  # fmt: skip
    assert (again["jobStats"]["processed"], again["jobStats"]["skipped"]) == (0, N)


async def test_dry_run_copies_nothing(admin, s3, source, bucket):
    src, _ = source
    done = await _run(admin, src, destinationBucket=bucket, dryRun=True)
    assert done["jobState"] == "COMPLETE", done["message"]
    assert done["jobStats"]["processed"] == N
    assert await keys(s3, bucket) == {}


async def test_permanent_failures_are_listed_and_failed_reruns_exactly_them(
    admin, s3, remote_s3, remote_store, bucket
):
    """Destination writes of chosen keys fail with 403 (fault proxy): the job records exactly
    those keys in jobs/failures; FAILED copies exactly them once the fault is gone."""
    await put_many(s3, bucket, ((f"f/{i:04d}", b"x" * i) for i in range(1500)))
    doomed = {f"f/{i:04d}" for i in range(0, 1500, 100)}
    dst = f"faulty-{int(time.time() * 1000)}"
    await remote_s3.create_bucket(Bucket=dst)
    proxy = FaultProxy(remote_store.endpoint, permanent=dict.fromkeys(doomed, 403), seed=3)
    endpoint = await proxy.start()
    try:
        body = component_body(endpoint, remote_store.access_key, remote_store.secret_key, "proxy")
        component = (await admin.ok("/storage_component/create", body))["id"]
        params = {"destinationBucket": dst, "destinationComponent": component}
        first = await _run(admin, bucket, **params)
        assert first["jobState"] == "COMPLETE", first["message"]
        assert (first["jobStats"]["processed"], first["jobStats"]["failed"]) == (1485, 15)

        failures, token = [], None
        for _ in range(100):  # 15 failures, 4 a page: a token that never ends fails the test
            page = await admin.ok(
                "/jobs/failures",
                {"jobId": first["jobId"], "pageSize": 4, **({"pageToken": token} if token else {})},
            )
            failures += page["failures"]
            token = page.get("pageToken")
            if not token:
                break
        assert {f["key"] for f in failures} == doomed
        assert len(failures) == len(doomed)
        assert {(f["errorCode"], f["httpStatus"]) for f in failures} == {("AccessDenied", 403)}

        # A later job into another destination: its (lack of) failures are not this one's.
        await remote_s3.create_bucket(Bucket=f"{dst}-other")
        other = await _run(admin, bucket, destinationBucket=f"{dst}-other",
                           destinationComponent=component, replicationFilter="ALL")  # fmt: skip
        assert other["jobStats"]["failed"] == 15
        unrelated = {"destinationBucket": f"{dst}-never", "destinationComponent": component}
        refused = await admin.post("/jobs/create", {"jobType": "BATCH_REPLICATE",
            "bucketName": bucket, "jobParams": {**unrelated, "replicationFilter": "FAILED"}})  # fmt: skip
        assert refused.status_code == 400 and f"{dst}-never" in refused.json()["message"]

        proxy.permanent.clear()
        rerun = await _run(admin, bucket, replicationFilter="FAILED", **params)
        assert rerun["jobState"] == "COMPLETE", rerun["message"]
        stats = rerun["jobStats"]
        assert (stats["total"], stats["processed"], stats["failed"]) == (15, 15, 0)
        assert rerun["result"]["failedKeysOf"] == first["jobId"]
        await assert_same_objects(s3, bucket, remote_s3, dst)

        nothing_left = await _run(admin, bucket, replicationFilter="FAILED", **params)
        assert nothing_left["jobStats"]["total"] == 0
        everything = await _run(admin, bucket, replicationFilter="ALL", **params)
        assert everything["jobStats"]["processed"] == 1500
    finally:
        await proxy.stop()


async def test_failure_threshold_fails_the_job_with_a_clear_message(
    admin, s3, remote_s3, remote_store, bucket
):
    await put_many(s3, bucket, ((f"t/{i:03d}", b"t") for i in range(200)))
    doomed = {f"t/{i:03d}" for i in range(0, 200, 2)}  # half of them
    dst = f"thresh-{int(time.time() * 1000)}"
    await remote_s3.create_bucket(Bucket=dst)
    proxy = FaultProxy(remote_store.endpoint, permanent=dict.fromkeys(doomed, 403))
    endpoint = await proxy.start()
    try:
        body = component_body(endpoint, remote_store.access_key, remote_store.secret_key, "t")
        component = (await admin.ok("/storage_component/create", body))["id"]
        done = await _run(admin, bucket, destinationBucket=dst, destinationComponent=component,
                          failureThreshold=25)  # fmt: skip
    finally:
        await proxy.stop()
    assert done["jobState"] == "FAILED"
    assert "failureThreshold" in done["message"] and "100" in done["message"]
    assert done["jobStats"]["failed"] == 100


async def test_missing_or_unreachable_destination_fails_the_job_naming_it(
    admin, s3, bucket, remote_store
):
    await s3.put_object(Bucket=bucket, Key="a", Body=b"a")
    gone = await _run(admin, bucket, destinationBucket="no-such-destination")
    assert gone["jobState"] == "FAILED"
    assert "no-such-destination" in gone["message"] and "does not exist" in gone["message"]

    from tests.support.services import free_port

    body = component_body(f"http://127.0.0.1:{free_port()}", "ak", "sk", "down")
    down = (await admin.ok("/storage_component/create", body))["id"]
    unreachable = await _run(
        admin, bucket, destinationBucket="anywhere", destinationComponent=down, timeout=180
    )
    assert unreachable["jobState"] == "FAILED"
    assert "unreachable" in unreachable["message"] and str(down) in unreachable["message"]
    assert unreachable["jobStats"]["processed"] == 0


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"destinationBucket": "dst-x", "replicationFilter": "SOME"}, "replicationFilter"),
        ({"destinationBucket": "dst-x", "destinationComponent": 999999}, "999999"),
        ({}, "destinationBucket is required"),
        ({"destinationBucket": "dst-x", "replicationFilter": "FAILED"}, "no finished"),
        ({"destinationBucket": "Not_A_Bucket"}, "destinationBucket"),
        ({"destinationBucket": "dst-x", "destinationPrefi": "x"}, "destinationPrefi"),
    ],
)
async def test_bad_params_are_refused_and_create_nothing(admin, bucket, params, fragment):
    before = await admin.ok("/jobs/list", {"bucketName": bucket})
    response = await admin.post(
        "/jobs/create", {"jobType": "BATCH_REPLICATE", "bucketName": bucket, "jobParams": params}
    )
    assert response.status_code == 400, response.text
    assert fragment in response.json()["message"]
    assert await admin.ok("/jobs/list", {"bucketName": bucket}) == before


async def test_destination_equal_to_source_is_refused(admin, bucket):
    response = await admin.post(
        "/jobs/create",
        {"jobType": "BATCH_REPLICATE", "bucketName": bucket,
         "jobParams": {"destinationBucket": bucket, "destinationPrefix": "copy/"}},
    )  # fmt: skip
    assert response.status_code == 400
    assert "destination is the source" in response.json()["message"]


async def test_cancel_mid_run_goes_quiet_counts_exactly_and_a_rerun_finishes(admin, s3, bucket):
    """SPEC §3: after a cancel, copies stop within a second, and `processed` is exactly what
    landed in the (fresh) destination, work units cut short by the cancel included."""
    await put_many(s3, bucket, ((f"c{i % 4}/{i:05d}", b"c" * 10) for i in range(8000)))
    dst = f"{bucket}-dst"
    await s3.create_bucket(Bucket=dst)
    job = await admin.create("BATCH_REPLICATE", bucket, destinationBucket=dst)
    job_id = job["jobId"]["id"]
    await progress(admin, job_id, 1)  # a partition is done; others are copying
    cancelled = await admin.ok("/jobs/cancel", {"jobId": {"id": job_id}})
    assert cancelled["status"]["jobState"] == "CANCELLED"
    await asyncio.sleep(1.0)
    at_one_second = (await admin.status(job_id))["jobStats"]
    landed = len(await keys(s3, dst))
    await asyncio.sleep(2)
    assert len(await keys(s3, dst)) == landed < 8000, "copies went on after the cancel"
    final = await admin.status(job_id)
    assert final["jobStats"] == at_one_second, "stats changed more than 1 s after the cancel"
    assert final["jobStats"]["processed"] == landed, "processed is not what the job copied"
    assert final["jobStats"]["bytes"] == 10 * landed

    done = await _run(admin, bucket, destinationBucket=dst)
    assert done["jobState"] == "COMPLETE"
    assert done["jobStats"]["skipped"] == landed
    assert done["jobStats"]["processed"] == 8000 - landed
    await assert_same_objects(s3, bucket, s3, dst)


async def test_killed_worker_mid_copy_then_destination_equals_source(stack, admin, s3, bucket):
    await put_many(s3, bucket, ((f"k/{i:05d}", b"k" * (i % 7)) for i in range(4000)))
    dst = f"{bucket}-dst"
    await s3.create_bucket(Bucket=dst)
    stack.stop_workers()
    try:
        doomed = stack.start_worker(2, options=QUICK_RECOVERY)
        job = await admin.create("BATCH_REPLICATE", bucket, destinationBucket=dst, rateLimit=800)
        job_id = job["jobId"]["id"]
        await progress(admin, job_id)
        doomed.kill()
        stack.workers.remove(doomed)
        stack.start_worker(options=QUICK_RECOVERY)
        done = await admin.wait(job_id, timeout=180)
    finally:
        stack.stop_workers()
        stack.start_worker()
    assert done["jobState"] == "COMPLETE", done["message"]
    assert done["jobStats"]["processed"] + done["jobStats"]["skipped"] >= 4000
    await assert_same_objects(s3, bucket, s3, dst)


async def test_changed_credentials_reach_running_workers(
    admin, s3, remote_s3, remote_store, bucket
):
    """Rotate a component's secret through the API: the workers use it within seconds,
    without a restart."""
    await put_many(s3, bucket, ((f"r/{i}", b"r") for i in range(50)))
    dst = f"rotate-{int(time.time() * 1000)}"
    await remote_s3.create_bucket(Bucket=dst)
    body = component_body(remote_store.endpoint, remote_store.access_key, "old-secret", "rot")
    component = (await admin.ok("/storage_component/create", body))["id"]
    params = {"destinationBucket": dst, "destinationComponent": component}
    refused = await _run(admin, bucket, **params)
    assert refused["jobState"] == "FAILED" and dst in refused["message"]

    config = {**body["storageComponentConfig"], "secretKey": remote_store.secret_key}
    await admin.ok("/storage_component/update", {"id": component, "storageComponentConfig": config})
    await asyncio.sleep(6)  # the workers' copy of a component is at most 5 s old
    done = await _run(admin, bucket, **params)
    assert done["jobState"] == "COMPLETE", done["message"]
    assert done["jobStats"]["processed"] == 50


async def _multipart(
    s3: Any, bucket: str, key: str, parts: list[dict[str, Any]], **head: Any
) -> None:
    """A multipart upload of `parts` (each an upload_part or upload_part_copy argument set),
    four at a time."""
    upload = (await s3.create_multipart_upload(Bucket=bucket, Key=key, **head))["UploadId"]
    gate = asyncio.Semaphore(4)

    async def part(number: int, args: dict[str, Any]) -> dict[str, Any]:
        common = {"Bucket": bucket, "Key": key, "UploadId": upload, "PartNumber": number}
        async with gate:
            if "CopySource" in args:
                answer = await s3.upload_part_copy(**common, **args)
                return {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}
            answer = await s3.upload_part(**common, Body=args["Body"]())
            return {"PartNumber": number, "ETag": answer["ETag"]}

    done = await asyncio.gather(*(part(n, a) for n, a in enumerate(parts, start=1)))
    await s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": list(done)}
    )


async def _huge_object(s3: Any, bucket: str, key: str) -> int:
    """An object past CopyObject's 5 GiB limit, built inside the store: its parts are
    ranges of a 528 MiB random object, each starting 1 MiB further, so no two of its
    512 MiB regions hold the same bytes (a part copied to the wrong place shows)."""
    scratch = f"{bucket}-scratch"
    await s3.create_bucket(Bucket=scratch)
    random_part = {"Body": lambda: random.randbytes(66 * MiB)}
    await _multipart(s3, scratch, "base", [random_part] * 8)
    source = {"Bucket": scratch, "Key": "base"}
    ranges = [(i * MiB, i * MiB + COPY_PART_SIZE) for i in range(10)] + [(0, 8 * MiB)]
    parts = [{"CopySource": source, "CopySourceRange": f"bytes={a}-{b - 1}"} for a, b in ranges]
    await _multipart(s3, bucket, key, parts, ContentType="video/mp4", Metadata={"take": "7"})
    await s3.delete_object(Bucket=scratch, Key="base")
    await s3.delete_bucket(Bucket=scratch)
    return sum(b - a for a, b in ranges)


async def _same_ranges(s3: Any, a: tuple[str, str], b: tuple[str, str], size: int) -> None:
    """The same bytes around every 512 MiB boundary and at both ends of two large objects
    (reading them whole would take longer than copying them)."""
    for at in [*range(0, size, COPY_PART_SIZE), size]:
        span = f"bytes={max(0, at - 64 * 1024)}-{min(size, at + 64 * 1024) - 1}"
        bodies = []
        for bucket, key in (a, b):
            answer = await s3.get_object(Bucket=bucket, Key=key, Range=span)
            async with answer["Body"] as body:
                bodies.append(await body.read())
        assert bodies[0] == bodies[1], f"bytes differ in {span}"


async def test_a_multi_gib_object_is_copied_whole_and_ends_its_partition(admin, s3, db, bucket):
    """A 5 GiB + 8 MiB object among small ones: copied server-side in parts (past
    CopyObject's limit) with its bytes, headers and metadata. Its partition ends with it
    (the byte budget), so the objects after it are another partition, counted while it
    is still being copied."""
    small = {"a/empty": b"", **{f"b/small-{i}": f"small {i}".encode() * i for i in range(5)}}
    after = {f"z/after-{i}": b"after" for i in range(3)}
    await put_many(s3, bucket, [*small.items(), *after.items()])
    huge = "m/huge take+7 (5 GiB).bin"
    size = await _huge_object(s3, bucket, huge)
    assert size > COPY_OBJECT_LIMIT > PARTITION_BYTES
    dst = f"{bucket}-dst"
    await s3.create_bucket(Bucket=dst)
    try:
        job = await admin.create("BATCH_REPLICATE", bucket, destinationBucket=dst)
        # The small partition after it commits while the large object is still copying:
        # progress shows before the end (one partition of everything showed 0 until then).
        moving = await progress(admin, job["jobId"]["id"], at_least=len(after), timeout=120)
        assert moving["jobState"] == "EXECUTING", moving
        assert moving["jobStats"]["processed"] == len(after), moving["jobStats"]
        done = await admin.wait(job["jobId"]["id"], timeout=900)
        assert done["jobState"] == "COMPLETE", done["message"]
        assert done["jobStats"]["processed"] == len(small) + 1 + len(after)
        expected_bytes = size + sum(map(len, [*small.values(), *after.values()]))
        assert done["result"]["bytesCopied"] == expected_bytes
        async with db.connect() as conn:
            rows = await conn.execute(
                text("SELECT last_key, entries FROM job_partitions WHERE job_id = :j ORDER BY seq"),
                {"j": done["jobId"]["id"]},
            )
            partitions = [tuple(r) for r in rows]
        # One shard (the bucket fits a page); its last partition ends where it does.
        assert partitions == [(huge, len(small) + 1), (max(after), len(after))], partitions
        await assert_same_objects(s3, bucket, s3, dst, detailed=[*small, *after])
        heads = [await s3.head_object(Bucket=b, Key=huge) for b in (bucket, dst)]
        for field in ("ContentLength", "ContentType", "Metadata"):
            assert heads[0][field] == heads[1][field], field
        await _same_ranges(s3, (bucket, huge), (dst, huge), size)
    finally:  # gigabytes: not left for the rest of the run
        for name in (bucket, dst):
            await s3.delete_object(Bucket=name, Key=huge)
