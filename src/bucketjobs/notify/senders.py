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
import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import redis.asyncio as aioredis
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
    WEBHOOK_LANES at a time on one keep-alive pool. 2xx is delivered."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.url = config["url"]
        headers = {"Content-Type": "application/json"}
        if "authHeader" in config:
            headers["Authorization"] = config["authHeader"]
        limits = httpx.Limits(max_connections=WEBHOOK_LANES)
        self.http = httpx.AsyncClient(headers=headers, timeout=TIMEOUT, limits=limits)

    async def _post(self, body: bytes) -> None:
        try:
            response = await self.http.post(self.url, content=body)
        except httpx.TransportError as exc:
            raise Transient(f"{type(exc).__name__}: {exc}"[:300]) from None
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise Transient(f"HTTP {response.status_code}")
        if not 200 <= response.status_code < 300:
            raise ValueError(f"HTTP {response.status_code}")

    async def send(self, messages: Sequence[bytes], stopping: Callable[[], bool]) -> list[Delivery]:
        gate = asyncio.Semaphore(WEBHOOK_LANES)

        async def one(body: bytes) -> Delivery:
            async with gate:
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
            await self.http.head(self.url)
        except httpx.TransportError as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        return None

    async def close(self) -> None:
        await self.http.aclose()


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


SENDERS: dict[TargetType, Callable[[dict[str, Any]], Sender]] = {
    TargetType.WEBHOOK: WebhookSender,
    TargetType.REDIS: RedisSender,
}


def open_sender(target: Target) -> Sender:
    """A sender for `target`; ValueError for a type whose delivery is not built yet."""
    if target.type not in SENDERS:
        raise ValueError(f"delivery to {target.type.value} targets is not built yet")
    return SENDERS[target.type](target.config)


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
        return scrubbed(await asyncio.wait_for(sender.probe(), TIMEOUT + 5), target.config)
    except TimeoutError:
        return f"no answer within {TIMEOUT + 5:g} s"
    finally:
        await sender.close()
