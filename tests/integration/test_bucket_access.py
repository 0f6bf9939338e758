"""Bucket access (SPEC §2): every role, job type and grant, through HTTP, on real buckets."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.mapi import Mapi
from tests.support.objects import keys
from tests.support.s3 import put_many


async def _bucket(s3: Any, name: str, objects: int = 3) -> str:
    await s3.create_bucket(Bucket=name)
    await put_many(s3, name, ((f"k{i}", b"data") for i in range(objects)))
    return name


@pytest.fixture(scope="module")
async def buckets(s3: Any) -> dict[str, str]:
    """team-a's two buckets and another team's, each with three objects."""
    tag = f"{os.getpid()}"
    return {
        "a_src": await _bucket(s3, f"team-a-src-{tag}"),
        "a_dst": await _bucket(s3, f"team-a-dst-{tag}", 0),
        "b": await _bucket(s3, f"team-b-{tag}"),
    }


@pytest.fixture(scope="module")
async def users(stack: Any) -> AsyncIterator[dict[str, Mapi]]:
    made = {name: stack.add_user(f"acc-{name}", role) for name, role in
            (("none", "user"), ("reader", "user"), ("writer", "user"), ("oper", "operator"))}  # fmt: skip
    yield made
    for client in made.values():
        await client.close()


async def _user_id(client: Mapi) -> int:
    return int((await client.ok("/user/info"))["id"]["id"])


async def _set(admin: Mapi, client: Mapi, grants: list[dict[str, Any]]) -> dict[str, Any]:
    return await admin.ok("/user/grants/set", {"userId": {"id": await _user_id(client)},
                                                 "grants": grants})  # fmt: skip


@pytest.fixture(scope="module")
async def granted(admin: Mapi, users: dict[str, Mapi], remote_component: int) -> None:
    await _set(admin, users["reader"], [{"bucketPattern": "team-a-*", "access": "READ"}])
    await _set(
        admin,
        users["writer"],
        [
            {"bucketPattern": "team-a-*", "access": "WRITE"},
            {"bucketPattern": "granted-remote", "access": "WRITE", "component": remote_component},
        ],
    )


def _body(job_type: str, bucket: str, **params: Any) -> dict[str, Any]:
    return {"jobType": job_type, "bucketName": bucket, "jobParams": params}


async def _create(client: Mapi, job_type: str, bucket: str, **params: Any) -> tuple[int, str]:
    response = await client.post("/jobs/create", _body(job_type, bucket, **params))
    return response.status_code, response.json().get("code", "")


async def test_metric_reconciliation_needs_read(users, buckets, granted, admin):
    none, reader, writer, oper = (users[n] for n in ("none", "reader", "writer", "oper"))
    # No grant: refused, whether or not the bucket exists — nothing about existence leaks.
    assert await _create(none, "METRIC_RECONCILIATION", buckets["a_src"]) == (403, "FORBIDDEN")
    assert await _create(none, "METRIC_RECONCILIATION", "no-such-bucket-x") == (403, "FORBIDDEN")
    assert await _create(reader, "METRIC_RECONCILIATION", buckets["b"]) == (403, "FORBIDDEN")
    assert await _create(reader, "METRIC_RECONCILIATION", "team-a-missing") == (
        400,
        "NO_SUCH_BUCKET",
    )
    for client in (reader, writer, oper, admin):
        created = await client.create("METRIC_RECONCILIATION", buckets["a_src"])
        done = await client.wait(created["jobId"]["id"])
        assert done["jobState"] == "COMPLETE" and done["jobStats"]["processed"] == 3
    other_team = await oper.create("METRIC_RECONCILIATION", buckets["b"])
    assert (await oper.wait(other_team["jobId"]["id"]))["jobState"] == "COMPLETE"


async def test_bucket_metrics_needs_read(users, buckets, granted, admin):
    reader, none = users["reader"], users["none"]
    done = await admin.wait(
        (await admin.create("METRIC_RECONCILIATION", buckets["b"]))["jobId"]["id"]
    )
    assert done["jobState"] == "COMPLETE"
    for client in (none, reader):
        refused = await client.post("/bucket/metrics", {"bucketName": buckets["b"]})
        assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN"
        assert "objectCount" not in refused.text
    assert (await users["oper"].ok("/bucket/metrics", {"bucketName": buckets["b"]}))["metrics"]
    missing = await none.post("/bucket/metrics", {"bucketName": "never-reconciled"})
    assert missing.status_code == 403


async def test_replicate_needs_read_on_source_and_write_on_destination(
    users, buckets, granted, admin, s3, remote_component, remote_s3
):
    reader, writer, none = users["reader"], users["writer"], users["none"]
    src, dst, other = buckets["a_src"], buckets["a_dst"], buckets["b"]
    # READ on both buckets is not enough to write into one.
    assert await _create(reader, "BATCH_REPLICATE", src, destinationBucket=dst) == (
        403,
        "FORBIDDEN",
    )
    assert await _create(none, "BATCH_REPLICATE", src, destinationBucket=dst) == (403, "FORBIDDEN")
    # Copying another team's data out, or into another team's bucket: refused.
    assert await _create(writer, "BATCH_REPLICATE", other, destinationBucket=dst) == (
        403,
        "FORBIDDEN",
    )
    assert await _create(writer, "BATCH_REPLICATE", src, destinationBucket=other) == (
        403,
        "FORBIDDEN",
    )
    # The same bucket name on another component needs a grant on that component.
    assert await _create(
        writer, "BATCH_REPLICATE", src, destinationBucket=dst, destinationComponent=remote_component
    ) == (403, "FORBIDDEN")
    before_other = await keys(s3, other)

    job = await writer.create("BATCH_REPLICATE", src, destinationBucket=dst)
    assert (await writer.wait(job["jobId"]["id"]))["jobState"] == "COMPLETE"
    assert set(await keys(s3, dst)) == {"k0", "k1", "k2"}

    await remote_s3.create_bucket(Bucket="granted-remote")
    job = await writer.create(
        "BATCH_REPLICATE",
        src,
        destinationBucket="granted-remote",
        destinationComponent=remote_component,
    )
    assert (await writer.wait(job["jobId"]["id"]))["jobState"] == "COMPLETE"
    assert set(await keys(remote_s3, "granted-remote")) == {"k0", "k1", "k2"}
    assert await keys(s3, other) == before_other


async def test_lifecycle_update_needs_write(users, buckets, granted, admin, s3):
    """A job that deletes data: READ is not enough, even for a dry run, and an override
    does not let a user reach another team's bucket."""
    policy = '{"Rules": [{"ID": "all", "Status": "Enabled", "Filter": {},'
    policy += ' "Expiration": {"Date": "2020-01-01T00:00:00Z"}}]}'
    none, reader, writer = users["none"], users["reader"], users["writer"]
    before = await keys(s3, buckets["b"])
    for client, bucket in ((none, buckets["a_src"]), (reader, buckets["a_src"]),
                           (writer, buckets["b"]), (reader, "no-such-bucket-x")):  # fmt: skip
        for dry in ("true", "false"):
            answer = await _create(
                client, "LIFECYCLE_UPDATE", bucket, lifecycleConfiguration=policy, dryRun=dry
            )
            assert answer == (403, "FORBIDDEN"), (client, bucket, dry)
    assert await keys(s3, buckets["b"]) == before
    preview = await writer.create(
        "LIFECYCLE_UPDATE", buckets["a_src"], lifecycleConfiguration=policy, dryRun="true"
    )
    done = await writer.wait(preview["jobId"]["id"])
    assert done["jobState"] == "COMPLETE" and done["result"]["expired"] == 3
    assert len(await keys(s3, buckets["a_src"])) == 3


async def test_trigger_reconciliation_needs_read(users, buckets, granted):
    # Access is checked before the bindings are read: no binding is needed to be refused.
    assert await _create(users["none"], "TRIGGER_RECONCILIATION", buckets["a_src"]) == (
        403,
        "FORBIDDEN",
    )
    assert await _create(users["reader"], "TRIGGER_RECONCILIATION", buckets["b"]) == (
        403,
        "FORBIDDEN",
    )
    created = await users["reader"].create("TRIGGER_RECONCILIATION", buckets["a_src"])
    done = await users["reader"].wait(created["jobId"]["id"])
    assert done["jobState"] == "FAILED" and "no notification target" in done["message"]


async def test_job_already_active_names_the_job_only_to_who_may_see_it(users, granted, admin, s3):
    bucket = await _bucket(s3, f"team-a-busy-{os.getpid()}", 3000)
    created = await admin.create("METRIC_RECONCILIATION", bucket, rateLimit=500)  # ~6 s
    job_id = created["jobId"]["id"]
    try:
        for client, sees in ((users["reader"], False), (users["oper"], True), (admin, True)):
            response = await client.post("/jobs/create", _body("METRIC_RECONCILIATION", bucket))
            assert response.json()["code"] == "JOB_ALREADY_ACTIVE"
            assert (str(job_id) in response.text) is sees
    finally:
        await admin.ok("/jobs/cancel", {"jobId": {"id": job_id}})


async def test_grants_api_rules_and_user_info(users, admin, granted, remote_component):
    reader = users["reader"]
    reader_id = await _user_id(reader)
    info = await reader.ok("/user/info")
    assert [g["bucketPattern"] for g in info["grants"]] == ["team-a-*"]
    assert info["grants"][0]["access"] == "READ" and info["grants"][0]["userId"] == {
        "id": reader_id
    }
    got = await admin.ok("/user/grants/get", {"userId": {"id": reader_id}})
    assert got["grants"] == info["grants"]
    # Only mapi:users:admin manages grants; an operator may not grant itself anything.
    for client in (reader, users["oper"]):
        denied = await client.post("/user/grants/set", {"userId": {"id": reader_id}, "grants": []})
        assert denied.status_code == 403
    for grants, field in (
        ([{"bucketPattern": "Bad_Name"}], "bucketPattern"),
        ([{"bucketPattern": "a*b*"}], "bucketPattern"),
        ([{"bucketPattern": "ok", "access": "ADMIN"}], "access"),
        ([{"bucketPattern": "okay", "component": 999999}], "component"),
        ([{"bucketPattern": "okay", "component": 2**40}], "component"),
        ([{"bucketPattern": "x" * 100}], "bucketPattern"),
        ([{"bucketPattern": "ok\x00ay"}], "bucketPattern"),
    ):
        bad = await admin.post("/user/grants/set", {"userId": {"id": reader_id}, "grants": grants})
        assert bad.status_code == 400 and field in bad.json()["message"], (grants, bad.text)
    unchanged = await admin.ok("/user/grants/get", {"userId": {"id": reader_id}})
    assert unchanged["grants"] == info["grants"]  # bad input changed nothing
    ghost = await admin.post("/user/grants/get", {"userId": {"id": 2**31 - 1}})
    assert ghost.status_code == 404


def test_grant_commands(stack, users):
    base = ["--database-url", stack.database_url, "--data-dir", str(stack.data_dir)]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bucketjobs.cli.main", "users", *args, *base],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    assert cli("grant", "acc-none", "logs-*", "--write").returncode == 0
    assert cli("grant", "acc-none", "audit").returncode == 0
    listed = cli("grants", "acc-none")
    assert "logs-*" in listed.stdout and "WRITE" in listed.stdout and "audit" in listed.stdout
    assert cli("revoke", "acc-none", "audit").returncode == 0
    assert "audit" not in cli("grants", "acc-none").stdout
    for args in (("grant", "acc-none", "Not A Bucket"), ("grant", "ghost-user", "x-*"),
                 ("revoke", "acc-none", "never-granted"), ("grant", "acc-none", "x", "--component", "424242")):  # fmt: skip
        failed = cli(*args)
        assert failed.returncode == 1 and "Traceback" not in failed.stderr, args
    assert cli("revoke", "acc-none", "logs-*").returncode == 0
