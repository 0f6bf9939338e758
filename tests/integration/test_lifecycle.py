"""LIFECYCLE_UPDATE against real SeaweedFS: exact survivors in plain, versioned and suspended
buckets, a dry run that previews exactly, midnight rounding, uploads, bad policies, cancel.

Objects here are seconds old: rules are made due by evaluating at a later `evaluationTime`.
Keys avoid the sibling shapes SeaweedFS drops from version listings (a key that is a prefix
of a sibling's directory, docs/DECISIONS.md): each test's keys sit one level under distinct
prefixes, and the planner's order check stays on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

from tests.support.objects import keys
from tests.support.s3 import put_many
from tests.support.waiting import progress

NOW = dt.datetime.now(dt.UTC)


def at(days: float) -> str:
    return (NOW + dt.timedelta(days=days)).isoformat().replace("+00:00", "Z")


def policy(*rules: dict[str, Any]) -> str:
    return json.dumps({"Rules": list(rules)})


def rule(rule_id: str, **fields: Any) -> dict[str, Any]:
    return {"ID": rule_id, "Status": "Enabled", "Filter": {}, **fields}


async def versions(s3: Any, bucket: str) -> list[tuple[str, str, bool]]:
    """Every (key, versionId, is a delete marker) of the bucket."""
    found: list[tuple[str, str, bool]] = []
    paginator = s3.get_paginator("list_object_versions")
    async for page in paginator.paginate(Bucket=bucket):
        found += [(v["Key"], v["VersionId"], False) for v in page.get("Versions", [])]
        found += [(m["Key"], m["VersionId"], True) for m in page.get("DeleteMarkers", [])]
    return sorted(found)


async def run(admin: Any, bucket: str, **params: Any) -> dict[str, Any]:
    job = await admin.create("LIFECYCLE_UPDATE", bucket, **params)
    done = await admin.wait(job["jobId"]["id"])
    assert done["jobState"] == "COMPLETE", done.get("message")
    return done


ODD = ["logs/ünï cødé", "logs/with space+plus", "logs/a%2Fb&c<d>", "logs/tab\there", "logs/日本"]


async def test_plain_bucket_mixed_rules_preview_then_apply(admin, s3, bucket):
    logs = [f"logs/{i:03d}" for i in range(30)] + ODD
    await put_many(s3, bucket, ((k, b"l" * 10) for k in logs))
    await put_many(s3, bucket, ((f"tmp/{i:03d}", b"t" * 3) for i in range(20)))
    await put_many(s3, bucket, ((f"big/{n:02d}", b"b" * n) for n in (5, 10, 11, 15)))
    await put_many(s3, bucket, ((f"keep/{i}", b"k") for i in range(5)))
    for name, tags in (("a", "t=1&other=x"), ("b", "t=2"), ("c", "")):
        await s3.put_object(Bucket=bucket, Key=f"tagged/{name}", Body=b"xx", Tagging=tags)
    config = policy(
        rule("logs", Filter={"Prefix": "logs/"}, Expiration={"Days": 1}),
        rule("tmp", Filter={"Prefix": "tmp/"}, Expiration={"Date": "2020-01-01T00:00:00Z"}),
        rule("big", Filter={"And": {"Prefix": "big/", "ObjectSizeGreaterThan": 10}},
             Expiration={"Days": 1}),
        rule("tag", Filter={"Tag": {"Key": "t", "Value": "1"}}, Expiration={"Days": 1}),
        rule("off", Status="Disabled", Expiration={"Days": 1}),
        rule("cold", Filter={"Prefix": "keep/"},
             Transitions=[{"Days": 1, "StorageClass": "GLACIER"}]),
    )  # fmt: skip
    before = await keys(s3, bucket)
    params = {"lifecycleConfiguration": config, "evaluationTime": at(3)}

    preview = await run(admin, bucket, dryRun="true", **params)
    assert await keys(s3, bucket) == before, "a dry run changed the bucket"
    gone = set(logs) | {f"tmp/{i:03d}" for i in range(20)} | {"big/11", "big/15", "tagged/a"}
    result = preview["result"]
    assert result["expired"] == len(gone) and preview["jobStats"]["processed"] == len(gone)
    assert result["transitionsNotApplied"] == 5
    assert result["rules"]["logs"] == {"expired": {"count": 35, "bytes": 350}}
    assert result["rules"]["big"] == {"expired": {"count": 2, "bytes": 26}}
    assert result["rules"]["tag"] == {"expired": {"count": 1, "bytes": 2}}
    assert result["rules"]["off"] == {}
    assert result["rules"]["cold"] == {"transitionsNotApplied": {"count": 5, "bytes": 5}}

    affected = (await admin.ok("/jobs/affected", {"jobId": preview["jobId"]}))["affected"]
    assert [a["key"] for a in affected] == sorted(gone, key=lambda k: k.encode())
    assert {(a["key"], a["rule"], a["action"]) for a in affected if a["key"] == "big/15"} == {
        ("big/15", "big", "expired")
    }

    applied = await run(admin, bucket, **params)
    assert (await admin.ok("/jobs/affected", {"jobId": applied["jobId"]}))["affected"] == []
    assert await keys(s3, bucket) == {k: v for k, v in before.items() if k not in gone}
    assert {**applied["result"], "dryRun": True} == result, "the preview was not exact"
    assert applied["jobStats"]["processed"] == len(gone)
    assert applied["jobStats"]["skipped"] == len(before) - len(gone)
    again = await run(admin, bucket, **params)
    assert again["jobStats"]["processed"] == 0 and again["result"]["expired"] == 0


async def test_versioned_bucket_exact_survivors_and_a_rerun_changes_nothing(admin, s3, bucket):
    await s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    made: dict[str, list[str]] = {}
    for key, count in (("v/a", 3), ("v/b", 1), ("w/d", 2), ("e/x", 1)):
        for n in range(count):
            answer = await s3.put_object(Bucket=bucket, Key=key, Body=b"v" * (n + 1))
            made.setdefault(key, []).append(answer["VersionId"])
    for key in ("v/b", "w/d", "v/c"):  # v/c never existed: a lone delete marker
        await s3.delete_object(Bucket=bucket, Key=key)
    listed = await versions(s3, bucket)
    marker = {k: v for k, v, is_marker in listed if is_marker}
    config = policy(
        rule("nc", Filter={"Prefix": "v/"},
             NoncurrentVersionExpiration={"NoncurrentDays": 1, "NewerNoncurrentVersions": 1}),
        rule("nc-all", Filter={"Prefix": "w/"}, NoncurrentVersionExpiration={"NoncurrentDays": 1}),
        rule("dm", Expiration={"ExpiredObjectDeleteMarker": True}),
        rule("exp", Filter={"Prefix": "e/"}, Expiration={"Days": 1}),
    )  # fmt: skip
    params = {"lifecycleConfiguration": config, "evaluationTime": at(5)}
    preview = await run(admin, bucket, dryRun="true", **params)
    assert await versions(s3, bucket) == listed

    done = await run(admin, bucket, **params)
    after = await versions(s3, bucket)
    kept = {
        ("v/a", made["v/a"][2], False), ("v/a", made["v/a"][1], False),  # newest noncurrent kept
        ("v/b", made["v/b"][0], False), ("v/b", marker["v/b"], True),  # its version kept: marker too
        ("e/x", made["e/x"][0], False),  # now noncurrent, under a new marker
    }  # fmt: skip
    assert set(after) - {(k, v, m) for k, v, m in after if k == "e/x" and m} == kept
    assert [k for k, _, m in after if m and k == "e/x"] == ["e/x"], "no delete marker for e/x"
    result = done["result"]
    assert result["noncurrentExpired"] == 3  # v/a's oldest, and both of w/d's
    assert result["deleteMarkersRemoved"] == 2  # v/c's lone one, and w/d's, same run
    assert result["expired"] == 1
    assert result["rules"]["nc-all"]["noncurrentExpired"] == {"count": 2, "bytes": 3}
    assert {**result, "dryRun": True} == preview["result"]

    again = await run(admin, bucket, **params)
    assert again["jobStats"]["processed"] == 0 and await versions(s3, bucket) == after


async def test_versioning_suspended_null_versions(admin, s3, bucket):
    await s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = (await s3.put_object(Bucket=bucket, Key="s/k", Body=b"1"))["VersionId"]
    await s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    await s3.put_object(Bucket=bucket, Key="s/k", Body=b"22")  # the null version, current
    await s3.put_object(Bucket=bucket, Key="s/n", Body=b"333")
    assert {v for _, v, _ in await versions(s3, bucket)} == {first, "null"}
    config = policy(
        rule("old", NoncurrentVersionExpiration={"NoncurrentDays": 1}),
        rule("cur", Filter={"Prefix": "s/n"}, Expiration={"Days": 1}),
    )
    done = await run(admin, bucket, lifecycleConfiguration=config, evaluationTime=at(3))
    assert done["result"]["noncurrentExpired"] == 1 and done["result"]["expired"] == 1
    # s/k keeps its null version only; s/n's null version is replaced by a null marker.
    assert await versions(s3, bucket) == [("s/k", "null", False), ("s/n", "null", True)]


async def test_due_dates_round_up_to_midnight_utc(admin, s3, bucket):
    await s3.put_object(Bucket=bucket, Key="m/one", Body=b"1")
    written = (await s3.head_object(Bucket=bucket, Key="m/one"))["LastModified"]
    midnight = (written + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    due = midnight + dt.timedelta(days=1)  # written + 1 day, rounded up
    config = policy(rule("one-day", Expiration={"Days": 1}))

    def moment(t: dt.datetime) -> str:
        return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")

    early = await run(admin, bucket, lifecycleConfiguration=config, dryRun="true",
                      evaluationTime=moment(due - dt.timedelta(seconds=1)))  # fmt: skip
    assert early["result"]["expired"] == 0
    on_time = await run(admin, bucket, lifecycleConfiguration=config, evaluationTime=moment(due))
    assert on_time["result"]["expired"] == 1 and await keys(s3, bucket) == {}


async def test_the_buckets_own_configuration_and_its_absence(admin, s3, bucket):
    await put_many(s3, bucket, ((f"own/{i}", b"o") for i in range(4)))
    job = await admin.create("LIFECYCLE_UPDATE", bucket)
    failed = await admin.wait(job["jobId"]["id"])
    assert failed["jobState"] == "FAILED"
    assert "no lifecycle configuration" in failed["message"] and bucket in failed["message"]
    assert len(await keys(s3, bucket)) == 4

    await s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={"Rules": [
            {"ID": "own", "Status": "Enabled", "Filter": {"Prefix": "own/"},
             "Expiration": {"Date": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)}},
        ]},
    )  # fmt: skip
    done = await run(admin, bucket)
    assert done["result"]["configurationFrom"] == "bucket"
    assert done["result"]["rules"]["own"]["expired"]["count"] == 4 and await keys(s3, bucket) == {}


async def test_incomplete_uploads_are_aborted_when_due(admin, s3, bucket):
    for key in ("up/a", "up/b", "elsewhere/c"):
        upload = await s3.create_multipart_upload(Bucket=bucket, Key=key)
        await s3.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1,
                             Body=b"p" * 100)  # fmt: skip
    config = policy(
        rule("abort", Filter={"Prefix": "up/"},
             AbortIncompleteMultipartUpload={"DaysAfterInitiation": 1}),
    )  # fmt: skip

    async def open_uploads() -> list[str]:
        return sorted(u["Key"] for u in (await s3.list_multipart_uploads(Bucket=bucket)).get(
            "Uploads", []))  # fmt: skip

    preview = await run(admin, bucket, lifecycleConfiguration=config, evaluationTime=at(2),
                        dryRun="true")  # fmt: skip
    assert preview["result"]["uploadsAborted"] == 2 and len(await open_uploads()) == 3
    done = await run(admin, bucket, lifecycleConfiguration=config, evaluationTime=at(2))
    assert done["result"]["uploadsAborted"] == 2 and done["jobStats"]["processed"] == 2
    assert done["result"]["rules"]["abort"] == {"uploadsAborted": {"count": 2, "bytes": 0}}
    assert await open_uploads() == ["elsewhere/c"]


async def test_bad_policies_are_400_naming_the_rule_and_create_nothing(admin, bucket):
    before = (await admin.ok("/jobs/list", {"bucketName": bucket}))["jobs"]
    cases = {
        "{not json": "not JSON",
        policy(rule("r1", Expire={"Days": 1})): "rule 'r1'",
        policy({"ID": "nofilter", "Status": "Enabled", "Expiration": {"Days": 1}}): "nofilter",
        policy(rule("r2", Expiration={"Days": 10**30})): "rule 'r2'",
        policy(rule("r3\x00", Expiration={"Days": 1, "Date": "2020-01-01T00:00:00Z"})): "r3",
        "[" * 1500 + "]" * 1500: "nested",
        json.dumps(
            {
                "Rules": [
                    {
                        "Status": "Enabled",
                        "Filter": {"And": {"Tags": "x"}},
                        "Expiration": {"Days": 1},
                    }
                ]
            }
        ): "Rules[0]",
    }
    for config, named in cases.items():
        answer = await admin.post("/jobs/create", {
            "jobType": "LIFECYCLE_UPDATE", "bucketName": bucket,
            "jobParams": {"lifecycleConfiguration": config},
        })  # fmt: skip
        assert answer.status_code == 400, (config[:40], answer.text)
        body = answer.json()
        assert body["code"] == "INVALID_REQUEST" and "lifecycleConfiguration" in body["message"]
        assert named in body["message"], body["message"]
    for params in ({"evaluationTime": "yesterday"}, {"lifecycleConfiguration": {"Rules": []}}):
        answer = await admin.post("/jobs/create", {
            "jobType": "LIFECYCLE_UPDATE", "bucketName": bucket, "jobParams": params,
        })  # fmt: skip
        assert answer.status_code == 400
    assert (await admin.ok("/jobs/list", {"bucketName": bucket}))["jobs"] == before


async def test_cancel_mid_run_stops_deleting(admin, s3, bucket):
    await put_many(s3, bucket, ((f"c{i % 4}/{i:05d}", b"c") for i in range(8000)))
    config = policy(rule("all", Expiration={"Date": "2020-01-01T00:00:00Z"}))
    job = await admin.create("LIFECYCLE_UPDATE", bucket, lifecycleConfiguration=config,
                             rateLimit=1500)  # fmt: skip
    job_id = job["jobId"]["id"]
    await progress(admin, job_id, 1)
    cancelled = await admin.ok("/jobs/cancel", {"jobId": {"id": job_id}})
    assert cancelled["status"]["jobState"] == "CANCELLED"
    await asyncio.sleep(2)
    left = len(await keys(s3, bucket))
    stats = (await admin.status(job_id))["jobStats"]
    await asyncio.sleep(2)
    assert len(await keys(s3, bucket)) == left > 0, "deletes went on after the cancel"
    assert (await admin.status(job_id))["jobStats"] == stats
    assert stats["processed"] == 8000 - left, "processed is not what the job deleted"


async def test_a_dry_run_keeps_its_first_thousand_affected_objects_in_key_order(
    admin, stack, s3, bucket
):
    names = [f"p{i % 5}/{i:05d}" for i in range(2500)] + ["p0/é", "p0/z", "p0/Z", "p1/~"]
    await put_many(s3, bucket, ((k, b"a") for k in names))
    config = policy(rule("all", Expiration={"Date": "2020-01-01T00:00:00Z"}))
    done = await run(admin, bucket, lifecycleConfiguration=config, dryRun="true")
    assert done["jobStats"]["processed"] == len(names)
    pages, token = [], None
    while True:
        body: dict[str, Any] = {"jobId": done["jobId"], "pageSize": 300}
        if token:
            body["pageToken"] = token
        page = await admin.ok("/jobs/affected", body)
        pages += [a["key"] for a in page["affected"]]
        token = page.get("pageToken")
        if not token:
            break
    assert pages == sorted(names, key=lambda k: k.encode())[:1000]
    stranger = stack.add_user("lc-stranger", "user")
    try:
        hidden = await stranger.post("/jobs/affected", {"jobId": done["jobId"]})
        assert hidden.status_code == 404
    finally:
        await stranger.close()
    for bad in ({"jobId": done["jobId"], "pageToken": "forged"},
                {"jobId": done["jobId"], "pageSize": 0}, {"jobId": {"id": 2**40}}):  # fmt: skip
        assert (await admin.post("/jobs/affected", bad)).status_code == 400


async def test_versions_the_store_refuses_to_delete_are_failures(admin, s3):
    """Object Lock legal holds make SeaweedFS refuse a version's delete inside a
    DeleteObjects answer (AccessDenied per key): those versions are failures, named in
    jobs/failures, the others go; past failureThreshold the job ends FAILED."""
    bucket = f"lc-locked-{NOW.microsecond}"
    await s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    held = {}
    for i in range(40):
        key = f"k/{i:02d}"
        hold = {"ObjectLockLegalHoldStatus": "ON"} if i < 10 else {}
        first = await s3.put_object(Bucket=bucket, Key=key, Body=b"1", **hold)
        await s3.put_object(Bucket=bucket, Key=key, Body=b"22")
        if i < 10:
            held[key] = first["VersionId"]
    config = policy(rule("old", NoncurrentVersionExpiration={"NoncurrentDays": 1}))
    params = {"lifecycleConfiguration": config, "evaluationTime": at(3)}
    done = await run(admin, bucket, **params)
    assert done["jobStats"]["processed"] == 30 and done["jobStats"]["failed"] == 10
    failures = (await admin.ok("/jobs/failures", {"jobId": done["jobId"]}))["failures"]
    assert {(f["key"], f["versionId"]) for f in failures} == set(held.items())
    assert {f["errorCode"] for f in failures} == {"AccessDenied"}
    left = {(k, v) for k, v, _ in await versions(s3, bucket)}
    assert set(held.items()) <= left and len(left) == 40 + 10

    strict = await admin.create("LIFECYCLE_UPDATE", bucket, failureThreshold=5, **params)
    ended = await admin.wait(strict["jobId"]["id"])
    assert ended["jobState"] == "FAILED" and "failureThreshold" in ended["message"]
    assert ended["jobStats"]["failed"] == 10 and ended["jobStats"]["processed"] == 0


async def test_the_planner_fails_a_job_past_its_threshold_mid_run(admin, s3):
    """Judged once 1,000 deletes were attempted, where the planner commits them."""
    bucket = f"lc-locked-many-{NOW.microsecond}"
    await s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    names = iter(f"m/{i:04d}" for i in range(1100))

    async def lane() -> None:
        for key in names:
            await s3.put_object(Bucket=bucket, Key=key, Body=b"1", ObjectLockLegalHoldStatus="ON")
            await s3.put_object(Bucket=bucket, Key=key, Body=b"2")

    await asyncio.gather(*(lane() for _ in range(32)))
    config = policy(rule("old", NoncurrentVersionExpiration={"NoncurrentDays": 1}))
    job = await admin.create("LIFECYCLE_UPDATE", bucket, lifecycleConfiguration=config,
                             evaluationTime=at(3), failureThreshold=50)  # fmt: skip
    ended = await admin.wait(job["jobId"]["id"])
    assert ended["jobState"] == "FAILED", ended
    assert " of " in ended["message"] and "failureThreshold of 50%" in ended["message"]
    assert ended["jobStats"]["failed"] >= 1000 and ended["jobStats"]["processed"] == 0
