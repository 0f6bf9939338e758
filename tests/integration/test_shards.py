"""Parallel enumeration: a bucket's key space becomes shards listed side by side (key
ranges bounded by real keys; top-level prefixes for versioned listings), and every job
type still sees each key exactly once (SeaweedFS, real jobs)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from bucketjobs.storage.components import Component, endpoint_location
from bucketjobs.storage.http import S3Http
from bucketjobs.storage.lister import S3Lister
from tests.support.objects import assert_same_objects
from tests.support.objects import keys as listed_keys
from tests.support.s3 import put_many

# Beside the prefixes: names that sort on either side of them in byte order and in
# SeaweedFS's directory order (`d01.txt`, `d01-a` vs `d01/…`), and a directory marker.
TOP = ["a.txt", "d01.txt", "d01-a", "d01a", "zz top", "ü.txt"]
SIZES = {"d00": 700, "d01": 1300, "d02": 40, "d03": 5, "d04": 900}


def _keys() -> list[str]:
    keys = [f"{d}/{i:05d}" for d, n in SIZES.items() for i in range(n)]
    keys += ["d03/", "d04/x/y/z deep", "d04/x/y/", *TOP]
    return keys


async def _rows(
    db: Any, job_id: int, columns: str, table: str = "job_shards", order: str = "shard"
) -> list[Any]:
    """`columns` of the job's rows in `table` (its shards, or its partitions), as tuples."""
    async with db.connect() as conn:
        rows = await conn.execute(
            text(f"SELECT {columns} FROM {table} WHERE job_id = :j ORDER BY {order}"),
            {"j": job_id},
        )
        return [tuple(r) for r in rows]


async def _shards(db: Any, job_id: int, columns: str = "prefix, delimited, done") -> list[Any]:
    return await _rows(db, job_id, columns)


async def test_every_job_type_sees_each_key_once_across_shards(admin, s3, bucket, db):
    keys = _keys()
    sizes = [0 if k.endswith("/") else len(k) % 7 for k in keys]
    await put_many(s3, bucket, ((k, b"s" * n) for k, n in zip(keys, sizes, strict=True)))

    metrics = await admin.wait((await admin.create("METRIC_RECONCILIATION", bucket))["jobId"]["id"])
    assert metrics["jobState"] == "COMPLETE", metrics["message"]
    assert metrics["result"]["metrics"]["objectCount"] == len(keys)
    assert metrics["result"]["metrics"]["bytes"] == sum(sizes)
    shards = await _shards(db, metrics["jobId"]["id"])
    assert len(shards) >= 2 and set(shards) == {("", False, True)}, shards  # key ranges

    # Copies run partition by partition on workers: each re-lists its range; a MISSING
    # re-run compares range by range.
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
        bounded = await conn.scalar(
            text("SELECT count(*) FROM job_partitions WHERE job_id = :j AND last_key IS NOT NULL"),
            {"j": again["jobId"]["id"]},
        )
    assert bounded >= len(shards) - 1


async def test_versioned_listings_are_split_by_top_level_prefix(admin, s3, bucket, db):
    await s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    keys = _keys()
    await put_many(s3, bucket, ((k, b"v") for k in keys))
    job = await admin.wait((await admin.create("METRIC_RECONCILIATION", bucket))["jobId"]["id"])
    assert job["jobState"] == "COMPLETE", job["message"]
    # Counted against the store's own listing: SeaweedFS, given a directory marker
    # (`d04/x/y/`) and a key below it at the same moment in a versioned bucket, now and
    # then keeps only the key (seen in 1 of ~15 runs; its own listings leave it out too).
    markers = [k for k in keys if k.endswith("/")]
    kept = await asyncio.gather(*(s3.list_objects_v2(Bucket=bucket, Prefix=k, MaxKeys=1)
                                  for k in markers))  # fmt: skip
    lost = sum(1 for k, page in zip(markers, kept, strict=True)
               if [o["Key"] for o in page.get("Contents", [])] != [k])  # fmt: skip
    assert lost <= 1
    assert job["result"]["metrics"]["objectCount"] == len(keys) - lost
    shards = await _shards(db, job["jobId"]["id"])
    assert shards == [(f"{d}/", False, True) for d in SIZES] + [("", True, True)]


async def _counted_every_key(job: dict[str, Any], keys: list[str], s3: Any, db: Any) -> None:
    """The job counted each key once; if not, say whose the miss is: the store's own listing
    now, and the job's partitions (prefix, bounds, entries)."""
    counted = job["result"]["metrics"]["objectCount"]
    if counted == len(keys):
        return
    listed = await listed_keys(s3, job["bucketName"])
    columns = "prefix, start_after, last_key, entries"
    parts = await _rows(db, job["jobId"]["id"], columns, "job_partitions", "seq")
    pytest.fail(
        f"the job counted {counted} of {len(keys)} keys; the store lists {len(listed)} now,"
        f" not {sorted(set(keys) - set(listed))[:5]}; partitions: {parts}"
    )


async def _ranges(db: Any, job_id: int) -> list[Any]:
    return await _shards(db, job_id, "cursor, last_key")


async def test_everything_under_one_prefix_is_split_into_ranges_below_it(admin, s3, bucket, db):
    keys = [f"data/2026/{m:02d}/{i:04d}" for m in range(1, 5) for i in range(600)]
    await put_many(s3, bucket, ((k, b"m") for k in keys))
    job = await admin.wait((await admin.create("METRIC_RECONCILIATION", bucket))["jobId"]["id"])
    assert job["jobState"] == "COMPLETE", job["message"]
    assert job["result"]["metrics"]["objectCount"] == len(keys)
    # The first page ends inside 02/: ranges start at the months after it.
    bounds = [last for _, last in await _ranges(db, job["jobId"]["id"])]
    assert bounds == ["data/2026/03/0000", "data/2026/04/0000", None]


async def test_job_prefix_is_split_within_it(admin, s3, bucket, db):
    keys = [f"logs/{h}/{i:03d}" for h in ("a", "b", "c", "d") for i in range(400)] + ["other/x"]
    await put_many(s3, bucket, ((k, b"l") for k in keys))
    job = await admin.create("METRIC_RECONCILIATION", bucket, prefix="logs/")
    job = await admin.wait(job["jobId"]["id"])
    assert job["result"]["metrics"]["objectCount"] == 1600
    # The first page saw only logs/a/ to logs/c/; logs/d/ gets a range of its own too.
    bounds = [last for _, last in await _ranges(db, job["jobId"]["id"])]
    assert bounds == ["logs/d/000", None]


async def test_ranges_that_start_after_a_directory_marker_lose_nothing(admin, s3, bucket, db):
    """Each subtree begins with its marker (`x5/`), so the bounds are markers: SeaweedFS,
    asked to start after `x5/`, must still list `x5/0000`… (it would skip `x5/`'s
    contents after a made-up `x5`)."""
    keys = [k for d in range(10) for k in (f"x{d}/", *(f"x{d}/{i:04d}" for i in range(200)))]
    await put_many(s3, bucket, ((k, b"" if k.endswith("/") else b"q") for k in keys))
    job = await admin.wait((await admin.create("METRIC_RECONCILIATION", bucket))["jobId"]["id"])
    assert job["jobState"] == "COMPLETE", job["message"]
    await _counted_every_key(job, keys, s3, db)
    assert job["result"]["metrics"]["bytes"] == 2000
    ranges = await _ranges(db, job["jobId"]["id"])
    assert [last for _, last in ranges] == ["x5/", "x6/", "x7/", "x8/", "x9/", None], ranges
    dst = f"{bucket}-copy"
    await s3.create_bucket(Bucket=dst)
    copy = await admin.wait(
        (await admin.create("BATCH_REPLICATE", bucket, destinationBucket=dst))["jobId"]["id"]
    )
    assert copy["jobStats"]["processed"] == len(keys), copy
    await assert_same_objects(s3, bucket, s3, dst)


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
    ranges = await _shards(db, job["jobId"]["id"], "cursor, last_key, done")
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


async def test_a_plain_listing_pages_past_a_directory_beside_names_that_sort_before_it(
    admin, s3, bucket
):
    """The same names unversioned: ListObjectsV2 pages past `t1/b/` to `t1/b-c` and `t1/b.d`
    (the versioned case below is SeaweedFS's bug)."""
    keys = [f"t1/b/{i:05d}" for i in range(1500)] + ["t1/b-c", "t1/b.d", "t1/z", "t2/x"]
    await put_many(s3, bucket, ((k, b"v") for k in keys))
    job = await admin.wait((await admin.create("METRIC_RECONCILIATION", bucket))["jobId"]["id"])
    assert job["jobState"] == "COMPLETE", job["message"]
    assert job["result"]["metrics"]["objectCount"] == len(keys)


@pytest.mark.xfail(
    strict=True,
    reason="SeaweedFS ListObjectVersions, asked for the page after a key inside a directory"
    " (t1/b/00999), leaves out the names its own walk lists after that directory but that"
    " sort before it in byte order (t1/b-c, t1/b.d); docs/DECISIONS.md, known limitations",
)
async def test_a_versioned_listing_pages_past_a_directory_beside_names_that_sort_before_it(
    admin, s3, bucket
):
    """Shard `t1/` holds `t1/b/…` over more than a page, then `t1/b-c` and `t1/b.d`. A
    store fix turns this test into an unexpected pass, which fails the suite: then drop
    the mark and the limitation."""
    await s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    keys = [f"t1/b/{i:05d}" for i in range(1500)] + ["t1/b-c", "t1/b.d", "t1/z", "t2/x"]
    await put_many(s3, bucket, ((k, b"v") for k in keys))
    job = await admin.wait((await admin.create("METRIC_RECONCILIATION", bucket))["jobId"]["id"])
    assert job["jobState"] == "COMPLETE", job["message"]
    assert job["result"]["metrics"]["objectCount"] == len(keys)
