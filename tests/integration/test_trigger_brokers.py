"""TRIGGER_RECONCILIATION to the message brokers, read back by their ordinary clients: NATS
(core and JetStream) and MQTT (Debian's nats-server and mosquitto) and AMQP 0-9-1 (Debian's
rabbitmq-server). Every object arrives once, naming it exactly."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aio_pika
import aiomqtt
import nats
import pytest

from tests.integration.test_triggers import (  # _no_targets_left: autouse here too
    KEYS,
    _assert_records,
    _bind,
    _no_targets_left,  # noqa: F401
    _target,
)
from tests.support.brokers import Mosquitto, NatsServer, RabbitMQ, decoded_events
from tests.support.mapi import Mapi
from tests.support.objects import keys as listed_keys
from tests.support.s3 import put_many


def _broker(kind: type, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    broker = kind(tmp_path_factory.mktemp(kind.__name__.lower()))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    yield from _broker(NatsServer, tmp_path_factory)


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    yield from _broker(Mosquitto, tmp_path_factory)


@pytest.fixture(scope="module")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQ]:
    yield from _broker(RabbitMQ, tmp_path_factory)


async def _run(admin: Mapi, bucket: str, tid: str, **params: Any) -> dict[str, Any]:
    await _bind(admin, bucket, {"targetId": tid, "events": ["s3:ObjectCreated:*"]})
    done = await admin.wait((await admin.create("TRIGGER_RECONCILIATION", bucket,
                                                **params))["jobId"]["id"])  # fmt: skip
    assert done["jobState"] == "COMPLETE", done
    assert done["result"]["targets"][tid]["failed"] == 0, done
    return done


async def _seed(s3: Any, bucket: str) -> dict[str, tuple[int, str]]:
    await put_many(s3, bucket, ((k, b"y" * (n % 5)) for n, k in enumerate(KEYS)))
    return await listed_keys(s3, bucket)


async def test_nats_core_subscribers_get_every_object_once(admin, s3, bucket, nats_server):
    expected = await _seed(s3, bucket)
    subject = f"s3.core.{bucket}"
    received: list[bytes] = []
    consumer = await nats.connect(nats_server.url)

    async def keep(msg: Any) -> None:
        received.append(msg.data)

    try:
        await consumer.subscribe(subject, cb=keep)
        await consumer.flush()
        tid = await _target(admin, f"nc-{bucket}", "NATS", url=nats_server.url, subject=subject)
        done = await _run(admin, bucket, tid)
        for _ in range(50):
            if len(received) >= len(KEYS):
                break
            await asyncio.sleep(0.1)
    finally:
        await consumer.close()
    _assert_records(decoded_events(received), expected, bucket, done["jobId"]["id"])


async def test_a_jetstream_stream_stores_every_object_once(admin, s3, bucket, nats_server):
    expected = await _seed(s3, bucket)
    subject = f"s3.js.{bucket}"
    client = await nats.connect(nats_server.url)
    try:
        stream = client.jetstream()
        name = f"EVENTS_{bucket.replace('-', '_').upper()}"
        await stream.add_stream(name=name, subjects=[subject])
        tid = await _target(admin, f"js-{bucket}", "NATS", url=nats_server.url, subject=subject,
                            jetStream="true")  # fmt: skip
        done = await _run(admin, bucket, tid)
        info = await stream.stream_info(name)
        stored = [(await stream.get_msg(name, seq)).data for seq in range(1, info.state.messages + 1)]  # fmt: skip
    finally:
        await client.close()
    _assert_records(decoded_events(stored), expected, bucket, done["jobId"]["id"])

    # The worker keeps one connection to the target across batches and jobs, and it keeps
    # one subscription (its acks' inbox), not one more per batch.
    await _run(admin, bucket, tid)
    assert max(nats_server.subscriptions().values()) == 1, nats_server.subscriptions()

    # With no stream on the subject, JetStream refuses each publish: failures, not losses.
    lost = await _target(admin, f"js-none-{bucket}", "NATS", url=nats_server.url,
                         subject=f"s3.none.{bucket}", jetStream="true")  # fmt: skip
    await _bind(admin, bucket, {"targetId": lost, "events": ["s3:ObjectCreated:*"]})
    job = await admin.create("TRIGGER_RECONCILIATION", bucket, failureThreshold="100")
    refused = await admin.wait(job["jobId"]["id"], timeout=120)
    assert refused["result"]["targets"][lost]["failed"] == len(KEYS), refused
    assert refused["jobStats"]["failed"] == len(KEYS)


async def test_mqtt_subscribers_get_every_object_once_at_qos_1(admin, s3, bucket, mosquitto):
    expected = await _seed(s3, bucket)
    topic = f"s3/events/{bucket}"
    received: list[bytes] = []
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier=f"sub-{bucket}",
                              clean_session=False) as sub:  # fmt: skip
        await sub.subscribe(topic, qos=1)
        tid = await _target(admin, f"mq-{bucket}", "MQTT", url=mosquitto.url, topic=topic)

        async def collect() -> None:
            async for msg in sub.messages:
                received.append(bytes(msg.payload))  # type: ignore[arg-type]
                if len(received) >= len(KEYS):
                    return

        collector = asyncio.create_task(collect())
        done = await _run(admin, bucket, tid)
        await asyncio.wait_for(collector, 20)
    _assert_records(decoded_events(received), expected, bucket, done["jobId"]["id"])


async def test_an_amqp_queue_gets_every_object_once_with_confirms(admin, s3, bucket, rabbitmq):
    expected = await _seed(s3, bucket)
    connection = await aio_pika.connect(rabbitmq.url)
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(f"s3-{bucket}", aio_pika.ExchangeType.TOPIC)
        queue = await channel.declare_queue(f"q-{bucket}", durable=True)
        await queue.bind(exchange, routing_key="s3.#")
        tid = await _target(admin, f"amqp-{bucket}", "AMQP", url=rabbitmq.url,
                            exchange=f"s3-{bucket}", routingKey="s3.created")  # fmt: skip
        done = await _run(admin, bucket, tid)
        received = []
        while (msg := await queue.get(no_ack=True, fail=False)) is not None:
            assert msg.content_type == "application/json"
            received.append(msg.body)
        _assert_records(decoded_events(received), expected, bucket, done["jobId"]["id"])

        # A routing key no queue takes: the broker returns each message; they fail, none
        # is silently dropped.
        nowhere = await _target(admin, f"amqp-x-{bucket}", "AMQP", url=rabbitmq.url,
                                exchange=f"s3-{bucket}", routingKey="elsewhere")  # fmt: skip
        await _bind(admin, bucket, {"targetId": nowhere, "events": ["s3:ObjectCreated:*"]})
        job = await admin.create("TRIGGER_RECONCILIATION", bucket, failureThreshold="100")
        refused = await admin.wait(job["jobId"]["id"], timeout=120)
        assert refused["result"]["targets"][nowhere]["failed"] == len(KEYS), refused
        failures = (await admin.ok("/jobs/failures", {"jobId": refused["jobId"]}))["failures"]
        assert all("refused by the broker" in f["message"] for f in failures), failures[:2]
    finally:
        await connection.close()
