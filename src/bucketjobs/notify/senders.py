"""Delivery to notification targets behind one small interface, with the field's own clients.

A `Sender` is opened once per target and worker process and reused by every job and batch
(engine/runtime.py): `send` delivers a batch of messages and says, per message, whether it
was delivered; `close` ends it. Delivery is at least once: a batch whose answer was lost is
sent again, so a consumer may see a message twice, never zero times.

Transient failures (connection refused or reset, timeouts, HTTP 5xx, 408 and 429) are
retried with exponential backoff and jitter for up to ~15 s, which rides out a broker
restart; what is still refused after that fails, message by message, with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import aio_pika
import aiohttp
import aiomqtt
import nats
import redis.asyncio as aioredis
from aio_pika.exceptions import DeliveryError
from nats.errors import Error as NatsError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bucketjobs.notify.config import MASK, TargetType
from bucketjobs.notify.service import Target

ATTEMPTS = 8  # tries of one batch: 0.25 · 2^n s apart (at most 4 s), about 15 s in all
TIMEOUT = 10.0  # seconds for one request or command
WEBHOOK_LANES = 16  # requests in flight to one webhook


class Transient(Exception):
    """A failure worth trying again (the target is down, slow or shedding load)."""


Delivery = str | None  # None: delivered; else why not
NOT_SENT = "not sent: the job was cancelled"  # neither delivered nor failed


class Sender(Protocol):
    async def send(self, messages: Sequence[bytes], stopping: Callable[[], bool]) -> list[Delivery]:
        """Deliver each message; per message None or the reason it was not delivered.
        Once `stopping()` (a cancelled job), retries end and what was not sent yet is
        NOT_SENT."""
        ...

    async def probe(self) -> Delivery:
        """Connect (and authenticate) without sending: None if the target answered."""
        ...

    async def close(self) -> None: ...


async def retried(
    attempt: Callable[[], Any], stopping: Callable[[], bool], attempts: int = ATTEMPTS
) -> Any:
    """`attempt()` until it does not raise Transient, with backoff; the last Transient
    propagates after `attempts` tries or once `stopping()`."""
    for n in range(attempts):
        try:
            return await attempt()
        except Transient:
            if n == attempts - 1 or stopping():
                raise
        await asyncio.sleep(min(4.0, 0.25 * 2**n) * random.uniform(0.5, 1.0))
    raise AssertionError("unreachable")


class WebhookSender:
    """One POST per event (as S3 sends them), `Content-Type: application/json`, up to
    WEBHOOK_LANES at a time on one keep-alive pool. 2xx is delivered.

    aiohttp, not httpx: against one local receiver, 16 requests in flight, httpx 0.28 made
    411 requests/s at 2.4 ms of CPU each (its pool's bookkeeping), aiohttp 9,343/s at
    0.1 ms (docs/DECISIONS.md)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.url = config["url"]
        self.headers = {"Content-Type": "application/json"}
        if "authHeader" in config:
            self.headers["Authorization"] = config["authHeader"]
        self._http: aiohttp.ClientSession | None = None
        # One gate for every batch of every job in this process: past WEBHOOK_LANES,
        # requests wait here, not in the client's pool.
        self.gate = asyncio.Semaphore(WEBHOOK_LANES)

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:  # made inside the event loop that uses it
            connector = aiohttp.TCPConnector(limit=WEBHOOK_LANES)
            timeout = aiohttp.ClientTimeout(total=TIMEOUT)
            self._http = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self._http

    async def _post(self, body: bytes) -> None:
        try:
            async with self.http.post(self.url, data=body, headers=self.headers) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Transient(f"{type(exc).__name__}: {exc}"[:300]) from None
        if status >= 500 or status in (408, 429):
            raise Transient(f"HTTP {status}")
        if not 200 <= status < 300:
            raise ValueError(f"HTTP {status}")

    async def send(self, messages: Sequence[bytes], stopping: Callable[[], bool]) -> list[Delivery]:
        async def one(body: bytes) -> Delivery:
            async with self.gate:
                if stopping():
                    return NOT_SENT
                try:
                    await retried(lambda: self._post(body), stopping)
                except (Transient, ValueError) as exc:
                    return str(exc)
            return None

        return list(await asyncio.gather(*(one(m) for m in messages)))

    async def probe(self) -> Delivery:
        """A HEAD to the URL: any HTTP answer means something listens there."""
        try:
            async with self.http.head(self.url, headers=self.headers) as response:
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        return None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


class RedisSender:
    """A batch is one pipeline (no transaction): XADD to a stream (field `event`), RPUSH
    to a list, or PUBLISH to a channel. A reply for every command is delivered; the batch
    is sent again whole when the connection fails before the replies."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.mode = config["mode"]
        self.key = config["key"]
        self.redis = aioredis.from_url(
            config["url"], socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
        )

    async def _pipeline(self, messages: Sequence[bytes]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for body in messages:
            if self.mode == "STREAM":
                pipe.xadd(self.key, {"event": body})
            elif self.mode == "LIST":
                pipe.rpush(self.key, body)
            else:
                pipe.publish(self.key, body)
        try:
            return list(await pipe.execute(raise_on_error=False))
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise Transient(f"{type(exc).__name__}: {exc}"[:300]) from None

    async def send(self, messages: Sequence[bytes], stopping: Callable[[], bool]) -> list[Delivery]:
        if stopping():
            return [NOT_SENT] * len(messages)
        try:
            replies = await retried(lambda: self._pipeline(messages), stopping)
        except Transient as exc:
            return [str(exc)] * len(messages)
        except RedisError as exc:  # refused as a whole (authentication, a wrong key type)
            return [f"{type(exc).__name__}: {exc}"[:300]] * len(messages)
        return [
            f"{type(r).__name__}: {r}"[:300] if isinstance(r, Exception) else None for r in replies
        ]

    async def probe(self) -> Delivery:
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        return None

    async def close(self) -> None:
        await self.redis.aclose()


class _Reconnecting:
    """A broker connection opened on first use and again after it broke: `send` batches
    go out on the current one; a failed connect is Transient, so `retried` waits and
    tries again (a broker restarting)."""

    _conn: Any = None

    async def _open(self) -> Any:
        raise NotImplementedError

    async def _shut(self, conn: Any) -> None:
        raise NotImplementedError

    async def connection(self) -> Any:
        if self._conn is None:
            try:
                self._conn = await asyncio.wait_for(self._open(), TIMEOUT)
            except Exception as exc:
                raise Transient(f"{type(exc).__name__}: {exc}"[:300]) from None
        return self._conn

    async def drop(self) -> None:
        """Forget a connection that failed (closing it as well as it can)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._shut(conn), 2.0)

    async def probe(self) -> Delivery:
        try:
            await self.connection()
        except Transient as exc:
            return str(exc)
        return None

    async def close(self) -> None:
        await self.drop()

    async def _batch(self, conn: Any, messages: Sequence[bytes]) -> list[Delivery]:
        raise NotImplementedError

    async def send(self, messages: Sequence[bytes], stopping: Callable[[], bool]) -> list[Delivery]:
        if stopping():
            return [NOT_SENT] * len(messages)

        async def attempt() -> list[Delivery]:
            conn = await self.connection()
            try:
                return await asyncio.wait_for(self._batch(conn, messages), TIMEOUT * 3)
            except (Transient, TimeoutError, ConnectionError, OSError) as exc:
                await self.drop()
                raise Transient(f"{type(exc).__name__}: {exc}"[:300]) from None

        try:
            return list(await retried(attempt, stopping))
        except Transient as exc:
            return [str(exc)] * len(messages)


class NatsSender(_Reconnecting):
    """Core NATS: publish the batch, then flush (the server has them all once its PONG
    answers). JetStream (`jetStream: "true"`): every publish is acknowledged by the
    stream that stores it; the batch is pipelined (`publish_async`) and its acks awaited
    together.

    One JetStream context per connection: each context subscribes to an inbox of its own
    for its acks, so a context per batch left a subscription behind for every batch. The
    whole batch is bounded by one timeout (`send`), not each publish: `wait_stall` wraps
    every publish in a task and a timer of its own, a third of the client's cost here."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.url = config["url"]
        self.subject = config["subject"]
        self.jetstream = config.get("jetStream") == "true"

    async def _open(self) -> Any:
        async def quiet(_: Exception) -> None:  # errors surface where they matter: sends
            return None

        conn = await nats.connect(
            self.url, connect_timeout=TIMEOUT, allow_reconnect=False, error_cb=quiet,
            max_reconnect_attempts=0,
        )  # fmt: skip
        return conn, conn.jetstream(timeout=TIMEOUT) if self.jetstream else None

    async def _shut(self, conn: Any) -> None:
        await conn[0].close()

    async def _batch(self, conn: Any, messages: Sequence[bytes]) -> list[Delivery]:
        client, stream = conn
        if stream is None:
            try:
                for body in messages:
                    await client.publish(self.subject, body)
                await client.flush(timeout=TIMEOUT)
            except NatsError as exc:
                raise Transient(f"{type(exc).__name__}: {exc}"[:300]) from None
            return [None] * len(messages)
        # Pipelined: up to the context's 4,000 unacknowledged, then each publish waits
        # for an ack to free a place (bounded by the batch's timeout).
        pending = [await stream.publish_async(self.subject, body) for body in messages]
        acks = await asyncio.gather(*pending, return_exceptions=True)
        if client.is_closed or not client.is_connected:
            raise Transient("the connection to the NATS server was lost")
        return [
            None if not isinstance(ack, BaseException) else f"{type(ack).__name__}: {ack}"[:300]
            for ack in acks
        ]


class MqttSender(_Reconnecting):
    """MQTT 3.1.1 with QoS 1 (or 2): each publish waits for the broker's PUBACK (PUBCOMP);
    up to 64 are in flight on one connection."""

    INFLIGHT = 64

    def __init__(self, config: dict[str, Any]) -> None:
        parts = urlsplit(config["url"])
        self.parts = parts
        self.topic = config["topic"]
        self.qos = int(config.get("qos", 1))

    async def _open(self) -> Any:
        parts = self.parts
        tls = ssl.create_default_context() if parts.scheme == "mqtts" else None
        client = aiomqtt.Client(
            parts.hostname or "", parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls_context=tls, timeout=TIMEOUT, max_inflight_messages=self.INFLIGHT,
        )  # fmt: skip
        await client.__aenter__()
        return client

    async def _shut(self, conn: Any) -> None:
        await conn.__aexit__(None, None, None)

    async def _batch(self, conn: Any, messages: Sequence[bytes]) -> list[Delivery]:
        gate = asyncio.Semaphore(self.INFLIGHT)

        async def one(body: bytes) -> None:
            async with gate:
                await conn.publish(self.topic, body, qos=self.qos, timeout=TIMEOUT)

        try:
            await asyncio.gather(*(one(m) for m in messages))
        except aiomqtt.MqttError as exc:  # the connection is gone: the batch goes again
            raise Transient(f"{type(exc).__name__}: {exc}"[:300]) from None
        return [None] * len(messages)


class AmqpSender(_Reconnecting):
    """AMQP 0-9-1 with publisher confirms: each message is persistent and `mandatory`, so
    a broker ack means a queue has it, and a message no queue takes is refused (returned)
    rather than dropped. Up to 256 confirms are awaited together on one channel."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.url = config["url"]
        self.exchange = config["exchange"]
        self.routing_key = config["routingKey"]

    async def _open(self) -> Any:
        connection = await aio_pika.connect(self.url, timeout=TIMEOUT)
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        if self.exchange:
            exchange = await channel.get_exchange(self.exchange, ensure=True)
        else:
            exchange = channel.default_exchange
        return connection, exchange

    async def _shut(self, conn: Any) -> None:
        await conn[0].close()

    async def _batch(self, conn: Any, messages: Sequence[bytes]) -> list[Delivery]:
        connection, exchange = conn
        gate = asyncio.Semaphore(256)

        async def one(body: bytes) -> Delivery:
            message = aio_pika.Message(body, content_type="application/json",
                                       delivery_mode=aio_pika.DeliveryMode.PERSISTENT)  # fmt: skip
            async with gate:
                try:
                    await exchange.publish(message, self.routing_key, mandatory=True,
                                           timeout=TIMEOUT)  # fmt: skip
                except DeliveryError as exc:
                    return f"refused by the broker: {exc}"[:300]
            return None

        results = list(await asyncio.gather(*(one(m) for m in messages)))
        if connection.is_closed:
            raise Transient("the connection to the AMQP broker was lost")
        return results


SENDERS: dict[TargetType, Callable[[dict[str, Any]], Sender]] = {
    TargetType.WEBHOOK: WebhookSender,
    TargetType.REDIS: RedisSender,
    TargetType.NATS: NatsSender,
    TargetType.MQTT: MqttSender,
    TargetType.AMQP: AmqpSender,
}


class _Scrubbing:
    """A sender whose reasons never carry the target's secrets (see `scrubbed`)."""

    def __init__(self, sender: Sender, config: dict[str, Any]) -> None:
        self.sender = sender
        self.config = config

    async def send(self, messages: Sequence[bytes], stopping: Callable[[], bool]) -> list[Delivery]:
        return [scrubbed(why, self.config) for why in await self.sender.send(messages, stopping)]

    async def probe(self) -> Delivery:
        return scrubbed(await self.sender.probe(), self.config)

    async def close(self) -> None:
        await self.sender.close()


def open_sender(target: Target) -> Sender:
    """A sender for `target`; ValueError for a type whose delivery is not built yet."""
    if target.type not in SENDERS:
        raise ValueError(f"delivery to {target.type.value} targets is not built yet")
    return _Scrubbing(SENDERS[target.type](target.config), target.config)


def scrubbed(why: Delivery, config: dict[str, Any]) -> Delivery:
    """`why` with the target's secrets (URL credentials, auth header) blanked out, in case
    a client library quoted them in an error: reasons are stored and answered."""
    if why is None:
        return None
    parts = urlsplit(config["url"])
    for secret in (parts.password, parts.username, config.get("authHeader")):
        if secret and len(secret) >= 3:  # shorter ones would blank out ordinary words
            why = why.replace(secret, MASK)
    return why


async def probe(target: Target) -> Delivery:
    """Connect to `target` once, without sending: None if it answered, else why not."""
    try:
        sender = open_sender(target)
    except ValueError as exc:
        return str(exc)
    try:
        return await asyncio.wait_for(sender.probe(), TIMEOUT + 5)
    except TimeoutError:
        return f"no answer within {TIMEOUT + 5:g} s"
    finally:
        await sender.close()
