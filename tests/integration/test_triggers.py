"""TRIGGER_RECONCILIATION against real targets: Debian's redis-server and an HTTP webhook.

Each test reads back what the targets actually received (XRANGE, LRANGE, the webhook's
bodies) and compares it with the bucket's listing: every object once, with the right key
(spaces, unicode, `+`), size, eTag and the reconciliation marker.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import text

from tests.support.brokers import RedisServer, Webhook, decoded_events
from tests.support.mapi import Mapi
from tests.support.objects import keys as listed_keys
from tests.support.s3 import put_many
from tests.support.services import free_port

KEYS = [f"obj-{i:03d}" for i in range(30)] + [
    "with space/a b.txt",
    "plus+sign",
    "unicodé/日本語 ✓",
    "amp&eq=q?",
    "deep/er/still/x.log",
]


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    hook = Webhook()
    await hook.start()
    yield hook
    await hook.stop()


@pytest.fixture(autouse=True)
async def _no_targets_left(db: Any) -> AsyncIterator[None]:
    yield
    async with db.begin() as conn:
        await conn.execute(text("DELETE FROM bucket_notifications"))
        await conn.execute(text("DELETE FROM notification_targets"))


async def _target(admin: Mapi, name: str, kind: str, **config: Any) -> str:
    body = {"name": name, "type": kind, "config": config}
    return str((await admin.ok("/notification/target/create", body))["target"]["id"])


async def _bind(admin: Mapi, bucket: str, *bindings: dict[str, Any]) -> None:
    await admin.ok("/notification/bucket/set", {"bucketName": bucket, "bindings": list(bindings)})


def _stream(server: RedisServer, key: str) -> list[bytes]:
    with server.client() as client:
        return [fields[b"event"] for _, fields in client.xrange(key)]


def _assert_records(
    records: list[dict[str, Any]], expected: dict[str, tuple[int, str]], bucket: str, job_id: int
) -> None:
    """Exactly one record per expected object, each naming it exactly."""
    seen = [r["s3"]["object"]["decodedKey"] for r in records]
    assert sorted(seen) == sorted(expected), (sorted(seen), sorted(expected))
    for record in records:
        obj = record["s3"]["object"]
        size, etag = expected[obj["decodedKey"]]
        assert obj["size"] == size and obj["eTag"] == etag, record
        assert len(obj["sequencer"]) == 16
        assert record["eventName"] == "ObjectCreated:Put"
        assert record["eventSource"] == "aws:s3" and record["eventVersion"] == "2.1"
        assert record["s3"]["bucket"]["name"] == bucket
        assert record["s3"]["bucket"]["arn"] == f"arn:aws:s3:::{bucket}"
        assert record["reconciliation"] == {"jobId": job_id}
        assert dt.datetime.fromisoformat(record["eventTime"]).tzinfo is not None


async def test_every_object_reaches_redis_and_a_webhook_once_with_exact_records(
    admin, s3, bucket, redis_server, webhook
):
    await put_many(s3, bucket, ((k, b"x" * (n % 7)) for n, k in enumerate(KEYS)))
    expected = await listed_keys(s3, bucket)
    stream = f"events-{bucket}"
    rid = await _target(admin, f"r-{bucket}", "REDIS", url=redis_server.url, mode="STREAM",
                        key=stream)  # fmt: skip
    wid = await _target(admin, f"w-{bucket}", "WEBHOOK", url=webhook.url,
                        authHeader="Bearer hook-secret")  # fmt: skip
    await _bind(admin, bucket, {"targetId": rid, "events": ["s3:ObjectCreated:*"]},
                {"targetId": wid, "events": ["s3:ObjectCreated:Put"]})  # fmt: skip

    job = await admin.create("TRIGGER_RECONCILIATION", bucket)
    done = await admin.wait(job["jobId"]["id"])
    job_id = done["jobId"]["id"]
    assert done["jobState"] == "COMPLETE", done
    assert done["jobStats"]["processed"] == len(KEYS) and done["jobStats"]["failed"] == 0
    assert done["result"]["targets"] == {
        rid: {"name": f"r-{bucket}", "type": "REDIS", "delivered": len(KEYS), "failed": 0},
        wid: {"name": f"w-{bucket}", "type": "WEBHOOK", "delivered": len(KEYS), "failed": 0},
    }
    _assert_records(decoded_events(_stream(redis_server, stream)), expected, bucket, job_id)
    _assert_records(decoded_events(webhook.bodies), expected, bucket, job_id)
    assert {h["Authorization"] for h in webhook.headers} == {"Bearer hook-secret"}
    assert {h["Content-Type"] for h in webhook.headers} == {"application/json"}
    # The key as S3 encodes it in records: a space is +, a + is %2B, / stays.
    by_key = {r["s3"]["object"]["decodedKey"]: r for r in decoded_events(webhook.bodies)}
    assert by_key["with space/a b.txt"]["s3"]["object"]["key"] == "with+space/a+b.txt"
    assert by_key["plus+sign"]["s3"]["object"]["key"] == "plus%2Bsign"


async def test_list_and_pubsub_modes_filters_window_and_a_dry_run(admin, s3, bucket, redis_server):
    await put_many(s3, bucket, ((k, b"old") for k in ("logs/a.gz", "logs/b.txt", "img/c.gz")))
    await asyncio.sleep(1.1)  # last-modified has one-second resolution
    cut = dt.datetime.now(dt.UTC)
    await asyncio.sleep(1.1)
    await put_many(s3, bucket, ((k, b"new!") for k in ("logs/d.gz", "logs/e.txt", "img/f.gz")))
    listed = await listed_keys(s3, bucket)
    lid = await _target(admin, f"l-{bucket}", "REDIS", url=redis_server.url, mode="LIST",
                        key=f"list-{bucket}")  # fmt: skip
    pid = await _target(admin, f"p-{bucket}", "REDIS", url=redis_server.url, mode="PUBSUB",
                        key=f"chan-{bucket}")  # fmt: skip
    await _bind(admin, bucket,
                {"targetId": lid, "events": ["s3:ObjectCreated:*"], "prefix": "logs/",
                 "suffix": ".gz"},
                {"targetId": pid, "events": ["s3:ObjectCreated:*"]})  # fmt: skip

    dry = await admin.wait((await admin.create("TRIGGER_RECONCILIATION", bucket,
                                               dryRun="true"))["jobId"]["id"])  # fmt: skip
    assert dry["jobState"] == "COMPLETE", dry
    assert dry["result"]["targets"][lid]["delivered"] == 2  # logs/a.gz, logs/d.gz
    assert dry["result"]["targets"][pid]["delivered"] == 6
    assert dry["jobStats"]["processed"] == 6
    with redis_server.client() as client:
        assert client.llen(f"list-{bucket}") == 0

    with redis_server.client() as client, client.pubsub() as sub:
        sub.subscribe(f"chan-{bucket}")
        sub.get_message(timeout=2)  # the subscribe confirmation
        job = await admin.create("TRIGGER_RECONCILIATION", bucket,
                                 modifiedAfter=cut.isoformat().replace("+00:00", "Z"))  # fmt: skip
        done = await admin.wait(job["jobId"]["id"])
        assert done["jobState"] == "COMPLETE", done
        published = []
        while (got := sub.get_message(timeout=2)) is not None:
            published.append(got["data"])
        in_list = client.lrange(f"list-{bucket}", 0, -1)
    newer = {k: v for k, v in listed.items() if k in ("logs/d.gz", "logs/e.txt", "img/f.gz")}
    _assert_records(decoded_events(published), newer, bucket, done["jobId"]["id"])
    _assert_records(decoded_events(in_list), {"logs/d.gz": listed["logs/d.gz"]}, bucket,
                    done["jobId"]["id"])  # fmt: skip
    assert done["jobStats"]["processed"] == 3 and done["jobStats"]["skipped"] == 3


async def test_a_versioned_buckets_records_name_each_current_version(
    admin, s3, bucket, redis_server
):
    await s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for body in (b"first", b"second!"):  # two versions of each; the newer is current
        await put_many(s3, bucket, ((k, body) for k in ("a", "dir/b c", "gone")))
    await s3.delete_object(Bucket=bucket, Key="gone")  # current version: a delete marker
    listed = await s3.list_object_versions(Bucket=bucket)
    current = {v["Key"]: v["VersionId"] for v in listed["Versions"] if v["IsLatest"]}
    assert sorted(current) == ["a", "dir/b c"]
    stream = f"versions-{bucket}"
    rid = await _target(admin, f"v-{bucket}", "REDIS", url=redis_server.url, mode="STREAM",
                        key=stream)  # fmt: skip
    await _bind(admin, bucket, {"targetId": rid, "events": ["s3:ObjectCreated:*"]})
    done = await admin.wait((await admin.create("TRIGGER_RECONCILIATION", bucket))["jobId"]["id"])
    assert done["jobState"] == "COMPLETE", done
    assert done["jobStats"]["processed"] == 2, done
    records = decoded_events(_stream(redis_server, stream))
    _assert_records(records, await listed_keys(s3, bucket), bucket, done["jobId"]["id"])
    assert {r["s3"]["object"]["decodedKey"]: r["s3"]["object"]["versionId"] for r in records} == (
        current
    )


async def test_a_target_down_at_first_gets_everything_once_it_returns(
    admin, s3, bucket, tmp_path, webhook
):
    late = RedisServer(tmp_path)
    await put_many(s3, bucket, ((f"k{i:02d}", b"v") for i in range(25)))
    expected = await listed_keys(s3, bucket)
    rid = await _target(admin, f"late-{bucket}", "REDIS", url=late.url, mode="STREAM", key="s")
    wid = await _target(admin, f"up-{bucket}", "WEBHOOK", url=webhook.url)
    await _bind(admin, bucket, {"targetId": rid, "events": ["s3:ObjectCreated:*"]},
                {"targetId": wid, "events": ["s3:ObjectCreated:*"]})  # fmt: skip
    job = await admin.create("TRIGGER_RECONCILIATION", bucket)
    await asyncio.sleep(2.0)  # the job is waiting for the broker
    assert (await admin.status(job["jobId"]["id"]))["jobState"] != "COMPLETE"
    late.start()
    try:
        done = await admin.wait(job["jobId"]["id"], timeout=90)
        assert done["jobState"] == "COMPLETE", done
        records = decoded_events(_stream(late, "s"))
    finally:
        late.stop()
    # At least once: a batch whose answer was lost may come twice; here none was lost.
    _assert_records(records, expected, bucket, done["jobId"]["id"])
    _assert_records(decoded_events(webhook.bodies), expected, bucket, done["jobId"]["id"])


async def test_a_target_that_never_answers_fails_its_objects_and_the_others_still_receive(
    admin, s3, bucket, redis_server
):
    await put_many(s3, bucket, ((f"n{i}", b"v") for i in range(8)))
    expected = await listed_keys(s3, bucket)
    dead = await _target(admin, f"dead-{bucket}", "WEBHOOK",
                         url=f"http://127.0.0.1:{free_port()}/gone")  # fmt: skip
    rid = await _target(admin, f"live-{bucket}", "REDIS", url=redis_server.url, mode="STREAM",
                        key=f"live-{bucket}")  # fmt: skip
    await _bind(admin, bucket, {"targetId": dead, "events": ["s3:ObjectCreated:*"]},
                {"targetId": rid, "events": ["s3:ObjectCreated:*"]})  # fmt: skip
    job = await admin.create("TRIGGER_RECONCILIATION", bucket, failureThreshold="100")
    done = await admin.wait(job["jobId"]["id"], timeout=120)
    assert done["jobState"] == "COMPLETE", done
    assert done["jobStats"]["failed"] == 8 and done["jobStats"]["processed"] == 0
    assert done["result"]["targets"][dead]["failed"] == 8
    assert done["result"]["targets"][rid]["delivered"] == 8
    _assert_records(decoded_events(_stream(redis_server, f"live-{bucket}")), expected, bucket,
                    done["jobId"]["id"])  # fmt: skip
    failures = (await admin.ok("/jobs/failures", {"jobId": done["jobId"]}))["failures"]
    assert sorted(f["key"] for f in failures) == sorted(expected)
    assert all(f"dead-{bucket} ({dead})" in f["message"] for f in failures), failures


async def test_a_job_whose_every_target_is_down_fails_naming_them(admin, s3, bucket):
    await put_many(s3, bucket, [("only", b"v")])
    tid = await _target(admin, f"nobody-{bucket}", "REDIS",
                        url=f"redis://127.0.0.1:{free_port()}/0", mode="LIST", key="k")  # fmt: skip
    await _bind(admin, bucket, {"targetId": tid, "events": ["s3:ObjectCreated:*"]})
    done = await admin.wait((await admin.create("TRIGGER_RECONCILIATION", bucket))["jobId"]["id"])
    assert done["jobState"] == "FAILED"
    assert f"nobody-{bucket} ({tid})" in done["message"], done


async def test_jobs_without_a_matching_binding_fail_and_unbound_targets_are_named(
    admin, s3, bucket, redis_server
):
    await put_many(s3, bucket, [("only", b"v")])
    done = await admin.wait((await admin.create("TRIGGER_RECONCILIATION", bucket))["jobId"]["id"])
    assert done["jobState"] == "FAILED" and "no notification target" in done["message"]
    tid = await _target(admin, f"rm-{bucket}", "REDIS", url=redis_server.url, mode="LIST",
                        key="k")  # fmt: skip
    await _bind(admin, bucket, {"targetId": tid, "events": ["s3:ObjectRemoved:*"]})
    done = await admin.wait((await admin.create("TRIGGER_RECONCILIATION", bucket))["jobId"]["id"])
    assert done["jobState"] == "FAILED" and "takes s3:ObjectCreated:Put" in done["message"]
    job = await admin.create("TRIGGER_RECONCILIATION", bucket, targets="999")
    done = await admin.wait(job["jobId"]["id"])
    assert done["jobState"] == "FAILED" and "999" in done["message"], done


async def test_target_test_says_what_answered(admin, redis_server, webhook):
    up = await _target(admin, "test-up", "REDIS", url=redis_server.url, mode="LIST", key="k")
    hook = await _target(admin, "test-hook", "WEBHOOK", url=webhook.url)
    down = await _target(admin, "test-down", "REDIS", mode="LIST", key="k",
                         url=f"redis://:pw-secret-1@127.0.0.1:{free_port()}/0")  # fmt: skip
    for tid in (up, hook):
        answer = await admin.ok("/notification/target/test", {"id": tid})
        assert answer["reachable"] is True and answer["error"] is None, answer
    answer = await admin.ok("/notification/target/test", {"id": down})
    assert answer["reachable"] is False and "refused" in answer["error"].lower(), answer
    assert "pw-secret-1" not in str(answer)
    missing = await admin.post("/notification/target/test", {"id": "987654"})
    assert missing.status_code == 404


def test_targets_and_bindings_commands(stack, redis_server, bucket):
    base = ["--database-url", stack.database_url, "--data-dir", str(stack.data_dir)]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bucketjobs.cli.main", *args, *base],
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    added = cli("targets", "add", "cli-redis", "redis", f"url={redis_server.url}",
                "mode=STREAM", "key=cli")  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = json.loads(cli("targets", "list", "--json").stdout)["targets"]
    tid = next(t["id"] for t in listed if t["name"] == "cli-redis")
    assert cli("targets", "test", tid).returncode == 0
    bound = cli("bindings", "set", bucket, tid, "--event", "s3:ObjectCreated:Put",
                "--prefix", "logs/")  # fmt: skip
    assert bound.returncode == 0, bound.stderr
    got = json.loads(cli("bindings", "get", bucket, "--json").stdout)
    assert got == {"bindings": [{"targetId": tid, "events": ["s3:ObjectCreated:Put"],
                                 "prefix": "logs/"}]}  # fmt: skip
    for args, says in (
        (("targets", "add", "x", "SMTP", "url=smtp://h"), "TYPE must be one of"),
        (("targets", "add", "x", "redis", "url=http://u:leak-9@h", "mode=LIST", "key=k"),
         "config.url"),
        (("targets", "add", "cli-redis", "redis", "url=redis://h", "mode=LIST", "key=k"),
         "exists"),
        (("targets", "remove", tid), "bound to bucket"),
        (("bindings", "set", bucket, "99999"), "not found"),
        (("bindings", "set", bucket, tid, "--event", "s3:Nope"), "events"),
    ):  # fmt: skip
        failed = cli(*args)
        assert failed.returncode == 1, (args, failed.stdout)
        assert says in failed.stderr and "Traceback" not in failed.stderr, failed.stderr
        assert "leak-9" not in failed.stderr
    assert cli("bindings", "set", bucket).returncode == 0
    assert cli("targets", "remove", tid).returncode == 0
    assert "cli-redis" not in cli("targets", "list").stdout


async def test_cancel_stops_sending_within_two_seconds_and_counts_what_was_delivered(
    admin, s3, bucket, webhook
):
    webhook.delay = 0.05  # 16 requests in flight: ~300 events/s
    await put_many(s3, bucket, ((f"c{i:04d}", b"v") for i in range(1500)))
    tid = await _target(admin, f"slow-{bucket}", "WEBHOOK", url=webhook.url)
    await _bind(admin, bucket, {"targetId": tid, "events": ["s3:ObjectCreated:*"]})
    job = await admin.create("TRIGGER_RECONCILIATION", bucket)
    while len(webhook.bodies) < 150:
        await asyncio.sleep(0.05)
    await admin.ok("/jobs/cancel", {"jobId": job["jobId"]})
    cancelled_at = time.monotonic()
    done = await admin.wait(job["jobId"]["id"], timeout=30)
    await asyncio.sleep(2.5)  # anything still coming would arrive by now
    assert done["jobState"] == "CANCELLED", done
    assert max(webhook.received_at) - cancelled_at < 2.0
    assert len(webhook.bodies) < 1500
    received = {r["s3"]["object"]["decodedKey"] for r in decoded_events(webhook.bodies)}
    final = await admin.status(job["jobId"]["id"])
    assert final["jobStats"]["processed"] == len(received) == len(webhook.bodies), final
