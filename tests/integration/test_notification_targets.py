"""`/mapi/v1/notification/*` (SPEC §4): targets with write-only encrypted secrets, per-type
config checks that name the field and never echo a value, bindings and who may see them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from bucketjobs.notify.service import NotificationService
from bucketjobs.storage.secrets import load_fernet
from tests.support.mapi import Mapi

SECRETS = ("hunter2-amqp", "nats-token-77", "mqtt-pass-9", "redis-pw-0", "Bearer web-tok-5",
           "web-user-pw")  # fmt: skip

GOOD: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    # (type, config as sent, config as answered)
    ("WEBHOOK", {"url": "https://ops:web-user-pw@hooks.example:8443/s3?x=1",
                 "authHeader": "Bearer web-tok-5"},
     {"url": "https://***@hooks.example:8443/s3?x=1", "authHeader": "***"}),
    ("AMQP", {"url": "amqp://guest:hunter2-amqp@mq.example:5672/vhost", "exchange": "",
              "routingKey": "s3.events"},
     {"url": "amqp://***@mq.example:5672/vhost", "exchange": "", "routingKey": "s3.events"}),
    ("NATS", {"url": "nats://nats-token-77@nats.example:4222", "subject": "s3.events.put",
              "jetStream": "true"},
     {"url": "nats://***@nats.example:4222", "subject": "s3.events.put", "jetStream": "true"}),
    ("MQTT", {"url": "mqtts://bj:mqtt-pass-9@[::1]:8883", "topic": "s3/events"},
     {"url": "mqtts://***@[::1]:8883", "topic": "s3/events", "qos": 1}),
    ("REDIS", {"url": "redis://:redis-pw-0@127.0.0.1:6379/0", "mode": "STREAM", "key": "s3"},
     {"url": "redis://***@127.0.0.1:6379/0", "mode": "STREAM", "key": "s3"}),
]  # fmt: skip


@pytest.fixture(scope="module")
async def targets(admin: Mapi, db: Any) -> AsyncIterator[dict[str, dict[str, Any]]]:
    made = {}
    for kind, config, _ in GOOD:
        made[kind] = (await admin.ok("/notification/target/create",
                                     {"name": f"t-{kind.lower()}", "type": kind,
                                      "config": config}))["target"]  # fmt: skip
    yield made
    async with db.begin() as conn:
        await conn.execute(text("DELETE FROM bucket_notifications"))
        await conn.execute(text("DELETE FROM notification_targets"))


async def test_targets_are_answered_without_secrets_and_stored_encrypted(admin, db, stack, targets):
    for kind, _, shown in GOOD:
        target = targets[kind]
        assert target["type"] == kind and target["name"] == f"t-{kind.lower()}"
        assert target["config"] == shown, kind
        assert target["id"].isdigit()
    listed = (await admin.ok("/notification/target/list", {}))["targets"]
    assert [t["id"] for t in listed] == [targets[k]["id"] for k, _, _ in GOOD]
    assert listed == [targets[k] for k, _, _ in GOOD]
    async with db.connect() as conn:
        stored = " ".join(
            " ".join(map(str, row))
            for row in await conn.execute(
                text("SELECT config::text, config_enc FROM notification_targets")
            )
        )
    for secret in SECRETS:
        assert secret not in json.dumps(listed) and secret not in stored, secret
    # What delivery will read back: the whole config, secrets included.
    service = NotificationService(db, load_fernet(stack.data_dir))
    for kind, config, _ in GOOD:
        full = await service.target(int(targets[kind]["id"]))
        assert full.config == {**config, **({"qos": 1} if kind == "MQTT" else {}),
                               **({"jetStream": "false"} if kind == "NATS" and
                                  "jetStream" not in config else {})}  # fmt: skip


BAD: list[tuple[dict[str, Any], str]] = [
    # (body, what the message must say)
    ({"name": "x", "type": "SMTP", "config": {"url": "smtp://h"}}, "type"),
    ({"name": "x", "type": "KAFKA", "config": {"bootstrapServers": "h:9092", "topic": "t"}},
     "KAFKA targets are not supported"),
    ({"name": "x", "type": "WEBHOOK", "config": {}}, "config.url"),
    ({"name": "x", "type": "WEBHOOK", "config": {"url": "amqp://u:leak-1@h/"}},
     "config.url: must start with http:// or https://"),
    ({"name": "x", "type": "WEBHOOK", "config": {"url": "http://u:leak-2@h:70000/"}},
     "config.url: is not a valid URL"),
    ({"name": "x", "type": "WEBHOOK", "config": {"url": "http:///nohost"}}, "must name a host"),
    ({"name": "x", "type": "WEBHOOK", "config": {"url": "http://h/", "authHeader": "a\nb"}},
     "config.authHeader"),
    ({"name": "x", "type": "WEBHOOK", "config": {"url": "http://h/", "token": "leak-3"}},
     "config.token"),
    ({"name": "x", "type": "AMQP", "config": {"url": "amqp://h/", "exchange": "e"}},
     "config.routingKey"),
    ({"name": "x", "type": "NATS", "config": {"url": "nats://h", "subject": "a.*"}},
     "config.subject"),
    ({"name": "x", "type": "NATS", "config": {"url": "nats://h", "subject": "a",
                                              "jetStream": "yes"}}, "config.jetStream"),
    ({"name": "x", "type": "MQTT", "config": {"url": "mqtt://h", "topic": "a/#"}},
     "config.topic"),
    ({"name": "x", "type": "MQTT", "config": {"url": "mqtt://h", "topic": "a", "qos": 0}},
     "config.qos"),
    ({"name": "x", "type": "REDIS", "config": {"url": "redis://h", "mode": "SET", "key": "k"}},
     "config.mode"),
    ({"name": "", "type": "REDIS", "config": {"url": "redis://h", "mode": "LIST", "key": "k"}},
     "name"),
    ({"name": "x", "type": "REDIS", "config": "redis://h"}, "config"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "says"), BAD)
async def test_bad_target_configs_get_a_400_naming_the_field_and_change_nothing(
    admin, targets, body, says
):
    before = await admin.ok("/notification/target/list", {})
    response = await admin.post("/notification/target/create", body)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["code"] == "INVALID_REQUEST"
    assert says in answer["message"], answer
    assert "leak-" not in response.text
    assert await admin.ok("/notification/target/list", {}) == before


async def test_a_target_name_is_taken_once(admin, targets):
    body = {"name": "t-redis", "type": "REDIS",
            "config": {"url": "redis://h", "mode": "LIST", "key": "k"}}  # fmt: skip
    response = await admin.post("/notification/target/create", body)
    assert response.status_code == 409 and response.json()["code"] == "CONFLICT"
    assert "t-redis" in response.json()["message"]


async def test_bindings_are_set_whole_checked_and_keep_bound_targets(admin, targets, bucket):
    web, redis = targets["WEBHOOK"]["id"], targets["REDIS"]["id"]
    bindings = [
        {"targetId": web, "events": ["s3:ObjectCreated:*"], "prefix": "logs/", "suffix": ".gz"},
        {"targetId": redis, "events": ["s3:ObjectCreated:Put", "s3:ObjectRemoved:*"]},
    ]
    set_ = await admin.ok("/notification/bucket/set", {"bucketName": bucket,
                                                       "bindings": bindings})  # fmt: skip
    assert set_ == {"bindings": bindings}
    assert await admin.ok("/notification/bucket/get", {"bucketName": bucket}) == set_

    refused = [
        ([{"targetId": "999999", "events": ["s3:ObjectCreated:*"]}], 404,
         "notification target 999999 (bindings[0].targetId) not found"),
        ([bindings[0], {**bindings[1], "targetId": web}], 400,
         f"bindings[1].targetId {web} is bound twice"),
        ([{"targetId": web, "events": ["s3:ObjectCreated:Put", "s3:Everything"]}], 400,
         "bindings.0.events"),
        ([{"targetId": web, "events": []}], 400, "bindings.0.events"),
        ([{"targetId": "abc", "events": ["s3:ObjectCreated:*"]}], 400, "bindings.0.targetId"),
    ]  # fmt: skip
    for body, status, says in refused:
        response = await admin.post("/notification/bucket/set", {"bucketName": bucket,
                                                                 "bindings": body})  # fmt: skip
        assert response.status_code == status, response.text
        assert says in response.json()["message"], response.json()
        assert await admin.ok("/notification/bucket/get", {"bucketName": bucket}) == set_

    # A bound target is not deleted (its events would go nowhere); unbound, it is.
    response = await admin.post("/notification/target/delete", {"id": web})
    assert response.status_code == 409 and bucket in response.json()["message"]
    cleared = await admin.ok("/notification/bucket/set", {"bucketName": bucket, "bindings": []})
    assert cleared == {"bindings": []}
    assert await admin.ok("/notification/target/delete", {"id": web}) == {}
    listed = (await admin.ok("/notification/target/list", {}))["targets"]
    assert web not in [t["id"] for t in listed]
    response = await admin.post("/notification/target/delete", {"id": web})
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"
    # Put it back for the other tests of the module.
    kind, config, _ = GOOD[0]
    targets[kind] = (await admin.ok("/notification/target/create",
                                    {"name": "t-webhook", "type": kind,
                                     "config": config}))["target"]  # fmt: skip


async def test_who_may_change_and_see_targets_and_bindings(stack, admin, targets, bucket):
    user = stack.add_user("notify-reader", "user")
    try:
        info = await user.ok("/user/info")
        grant = {"bucketPattern": bucket, "access": "READ"}
        body = {"name": "mine", "type": "REDIS",
                "config": {"url": "redis://h", "mode": "LIST", "key": "k"}}  # fmt: skip
        assert (await user.post("/notification/target/create", body)).status_code == 403
        rid = targets["REDIS"]["id"]
        assert (await user.post("/notification/target/delete", {"id": rid})).status_code == 403
        bind = {"bucketName": bucket,
                "bindings": [{"targetId": rid, "events": ["s3:ObjectCreated:*"]}]}  # fmt: skip
        assert (await user.post("/notification/bucket/set", bind)).status_code == 403
        # Any user reads targets (secrets masked as for the admin).
        assert await user.ok("/notification/target/list", {}) == await admin.ok(
            "/notification/target/list", {}
        )
        # Bindings only of buckets the user may read.
        await admin.ok("/notification/bucket/set", bind)
        response = await user.post("/notification/bucket/get", {"bucketName": bucket})
        assert response.status_code == 403, response.text
        await admin.ok("/user/grants/set", {"userId": info["id"], "grants": [grant]})
        got = await user.ok("/notification/bucket/get", {"bucketName": bucket})
        assert got == {"bindings": bind["bindings"]}
    finally:
        await admin.ok("/notification/bucket/set", {"bucketName": bucket, "bindings": []})
        await user.close()


async def test_a_bucket_with_no_bindings_has_an_empty_list(admin, bucket):
    assert await admin.ok("/notification/bucket/get", {"bucketName": bucket}) == {"bindings": []}
