"""Real notification targets for tests: Debian's redis-server on a loopback port of its own,
and a webhook receiver (aiohttp) that records what it is sent and can be told to fail."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import redis
from aiohttp import web

from tests.support.services import free_port


class RedisServer:
    """`redis-server` with no persistence, started and stopped by the tests themselves
    (scripts/test installs the package)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        log = open(self.root / "redis.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError((self.root / "redis.log").read_text()[-2000:]) from None
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


def decoded_events(bodies: list[bytes]) -> list[dict[str, Any]]:
    """Each message's one record, with `key` decoded back to the object key."""
    records = []
    for body in bodies:
        document = json.loads(body)
        assert list(document) == ["Records"] and len(document["Records"]) == 1, document
        record = document["Records"][0]
        record["s3"]["object"]["decodedKey"] = unquote_plus(record["s3"]["object"]["key"])
        records.append(record)
    return records


class Webhook:
    """An HTTP endpoint on 127.0.0.1 that records each POST body; `fail_with` makes it
    answer that status instead (and record nothing)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.fail_with: int | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        if request.method == "HEAD":
            return web.Response(status=405)
        if self.fail_with is not None:
            return web.Response(status=self.fail_with)
        self.bodies.append(await request.read())
        self.headers.append(dict(request.headers))
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            await asyncio.sleep(0)
