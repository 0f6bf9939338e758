"""Parallel enumeration: a bucket's top-level prefixes become shards listed side by side,
and every job type still sees each key exactly once (SeaweedFS, real jobs)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from bucketjobs.storage.components import Component, endpoint_location
from bucketjobs.storage.http import S3Http
from bucketjobs.storage.lister import S3Lister
from tests.support.objects import assert_same_objects
from tests.support.s3 import put_many

# Beside the prefixes: names that sort on either side of them in byte order and in
# SeaweedFS's directory order (`d01.txt`, `d01-a` vs `d01/…`), and a directory marker.
TOP = ["a.txt", "d01.txt", "d01-a", "d01a", "zz top", "ü.txt"]
SIZES = {"d00": 700, "d01": 1300, "d02": 40, "d03": 5, "d04": 900}


def _keys() -> list[str]:
    keys = [f"{d}/{i:05d}" for d, n in SIZES.items() for i in range(n)]
    keys += ["d03/", "d04/x/y/z deep", "d04/x/y/", *TOP]
    return keys


async def _shards(db: Any, job_id: int) -> list[tuple[str, bool, bool]]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text("SELECT prefix, delimited, done FROM job_shards WHERE job_id = :j ORDER BY shard"),
            {"j": job_id},
        )
        return [tuple(r) for r in rows]


async def test_every_job_type_sees_each_key_once_across_shards(admin, s3, bucket, db):
    keys = _keys()
    sizes = [0 if k.endswith("/") else len(k) % 7 for k in keys]
    await put_many(s3, bucket, ((k, b"s" * n) for k, n in zip(keys, sizes, strict=True)))

    metrics = await admin.wait((await admin.create("METRIC_RECONCILIATION", bucket))["jobId"]["id"])
    assert metrics["jobState"] == "COMPLETE", metrics["message"]
    assert metrics["result"]["metrics"]["objectCount"] == len(keys)
    assert metrics["result"]["metrics"]["bytes"] == sum(sizes)
    shards = await _shards(db, metrics["jobId"]["id"])
    expected = [(f"{d}/", False, True) for d in SIZES] + [("", True, True)]
    assert shards == expected

    # Copies run partition by partition on workers: each re-lists its shard's range,
    # the delimited one included; a MISSING re-run compares shard by shard.
    dst = f"{bucket}-copy"
    await s3.create_bucket(Bucket=dst)
    copy = await admin.create("BATCH_REPLICATE", bucket, destinationBucket=dst)
    copy = await admin.wait(copy["jobId"]["id"])
    assert copy["jobState"] == "COMPLETE", copy["message"]
    failures = await admin.ok("/jobs/failures", {"jobId": copy["jobId"]})
    assert copy["jobStats"]["processed"] == len(keys), failures
    await assert_same_objects(s3, bucket, s3, dst)
    again = await admin.create("BATCH_REPLICATE", bucket, destinationBucket=dst)
    again = await admin.wait(again["jobId"]["id"])
    assert again["jobStats"]["processed"] == 0 and again["jobStats"]["skipped"] == len(keys)
    async with db.connect() as conn:
        partitions = await conn.scalar(
            text("SELECT count(DISTINCT prefix) FROM job_partitions WHERE job_id = :j"),
            {"j": again["jobId"]["id"]},
        )
    assert partitions == len(SIZES) + 1


async def test_a_single_top_prefix_is_split_below_it(admin, s3, bucket, db):
    keys = [f"data/2026/{m:02d}/{i:04d}" for m in range(1, 5) for i in range(300)]
    await put_many(s3, bucket, ((k, b"m") for k in keys))
    job = await admin.wait((await admin.create("METRIC_RECONCILIATION", bucket))["jobId"]["id"])
    assert job["jobState"] == "COMPLETE", job["message"]
    assert job["result"]["metrics"]["objectCount"] == len(keys)
    shards = await _shards(db, job["jobId"]["id"])
    assert shards == [(f"data/2026/{m:02d}/", False, True) for m in range(1, 5)]


async def test_job_prefix_is_split_within_it(admin, s3, bucket, db):
    keys = [f"logs/{h}/{i:03d}" for h in ("a", "b", "c") for i in range(50)] + ["other/x"]
    await put_many(s3, bucket, ((k, b"l") for k in keys))
    job = await admin.create("METRIC_RECONCILIATION", bucket, prefix="logs/")
    job = await admin.wait(job["jobId"]["id"])
    assert job["result"]["metrics"]["objectCount"] == 150
    shards = await _shards(db, job["jobId"]["id"])
    assert [s[0] for s in shards] == ["logs/a/", "logs/b/", "logs/c/"]


# A flat bucket split into key ranges, with what could trip a range's ends: directories
# named like the probe strings (`k-1`, `k-2`: SeaweedFS skips a directory's contents when
# asked to start after its name), keys below them, and non-ASCII keys at the end.
FLAT = [f"k-{i:04d}" for i in range(3200)] + [
    "k-1/inside",
    "k-2/a/b",
    "k-2/a/c",
    "k-3",
    "k-",
    "k-ü",
    "k-日本",
    "k-\U0001f600",
]


async def test_a_flat_bucket_is_split_into_key_ranges_and_each_key_seen_once(admin, s3, bucket, db):
    sizes = [len(k) % 5 for k in FLAT]
    await put_many(s3, bucket, ((k, b"f" * n) for k, n in zip(FLAT, sizes, strict=True)))
    job = await admin.wait((await admin.create("METRIC_RECONCILIATION", bucket))["jobId"]["id"])
    assert job["jobState"] == "COMPLETE", job["message"]
    assert job["result"]["metrics"]["objectCount"] == len(FLAT)
    assert job["result"]["metrics"]["bytes"] == sum(sizes)
    async with db.connect() as conn:
        ranges = (
            await conn.execute(
                text("SELECT cursor, last_key, done FROM job_shards WHERE job_id = :j"
                     " ORDER BY shard"),
                {"j": job["jobId"]["id"]},
            )
        ).all()  # fmt: skip
    assert len(ranges) >= 3 and all(done for *_, done in ranges)
    assert ranges[0][1] is not None and ranges[-1][1] is None  # bounded, then open-ended

    # Copies re-list each range on the workers (partitions with both ends).
    dst = f"{bucket}-copy"
    await s3.create_bucket(Bucket=dst)
    copy = await admin.wait(
        (await admin.create("BATCH_REPLICATE", bucket, destinationBucket=dst))["jobId"]["id"]
    )
    assert copy["jobState"] == "COMPLETE", copy["message"]
    assert copy["jobStats"]["processed"] == len(FLAT)
    await assert_same_objects(s3, bucket, s3, dst)


async def test_delimited_listing_pages_on_past_common_prefixes(store, s3, bucket):
    """The delimited shard's listing, in pages smaller than its prefixes: continuation
    tokens carry it past pages that hold only common prefixes."""
    top = ["a", "m", "z"]
    keys = [f"p{n}/x" for n in range(5)] + top
    await put_many(s3, bucket, ((k, b"t") for k in keys))
    location = endpoint_location(store.endpoint)
    http = S3Http(Component(0, "GENERIC_S3", location, store.access_key, store.secret_key))
    lister = S3Lister(http)
    entries, prefixes, token, pages = [], [], None, 0
    try:
        while pages < 1000:  # a token that never ends fails the assertions below
            page = await lister.page(bucket, versions=False, delimiter="/", max_keys=2, token=token)
            entries += [e.key for e in page.entries]
            prefixes += page.prefixes
            pages += 1
            if not page.truncated:
                break
            assert page.token, "a truncated delimiter page must say where to go on"
            token = page.token
    finally:
        await http.close()
    assert entries == top
    assert prefixes == [f"p{n}/" for n in range(5)]
    assert pages >= 4


async def test_numbered_keys_whose_first_page_ends_a_subtree_list_it_once(admin, s3, bucket, db):
    """`n-000000` … `n-002999`: the first page ends one key before the `n-001…` subtree,
    whose first key is the first shard's bound. The probe for the key after the page finds
    it, so the first shard is whole without listing again (one partition of 1,001 entries),
    and every key is still counted once."""
    keys = [f"n-{i:06d}" for i in range(3000)]
    await put_many(s3, bucket, ((k, b"n" * (i % 3)) for i, k in enumerate(keys)))
    job = await admin.wait((await admin.create("METRIC_RECONCILIATION", bucket))["jobId"]["id"])
    assert job["jobState"] == "COMPLETE", job["message"]
    assert job["result"]["metrics"]["objectCount"] == 3000
    assert job["result"]["metrics"]["bytes"] == sum(i % 3 for i in range(3000))
    async with db.connect() as conn:
        query = text(
            "SELECT s.last_key, p.last_key, p.entries FROM job_shards s, job_partitions p"
            " WHERE s.job_id = :j AND p.job_id = :j AND s.shard = 0 AND p.start_after IS NULL"
        )
        first = (await conn.execute(query, {"j": job["jobId"]["id"]})).all()
    assert [tuple(row) for row in first] == [("n-001000", "n-001000", 1001)]
