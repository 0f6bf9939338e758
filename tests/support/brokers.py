"""Real notification targets for tests: Debian's redis-server, nats-server (JetStream),
mosquitto and rabbitmq-server, each on loopback ports of its own and stopped after, and a
webhook receiver (aiohttp) that records what it is sent and can be told to fail."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
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
        self.delay = 0.0  # seconds before each answer: a slow consumer
        self.received_at: list[float] = []  # time.monotonic() of each recorded body
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        if request.method == "HEAD":
            return web.Response(status=405)
        if self.fail_with is not None:
            return web.Response(status=self.fail_with)
        body = await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        self.bodies.append(body)
        self.received_at.append(time.monotonic())
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


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log.read_text()[-3000:]) from None
            time.sleep(0.1)


class Broker:
    """A broker from Debian's packages on loopback ports of its own, in its own folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def start(self) -> None:
        args, env = self.command()
        log_path = self.root / "broker.log"
        log = open(log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **env}, start_new_session=True)  # fmt: skip
        log.close()
        _wait_port(self.port, self.proc, log_path)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


class NatsServer(Broker):
    """nats-server with JetStream enabled, storing under its folder, and its monitoring
    port (`connz`: each client connection and its subscriptions)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.monitor_port = free_port()

    def subscriptions(self) -> dict[str, int]:
        """Subscriptions per connection, by the connection's name or address."""
        url = f"http://127.0.0.1:{self.monitor_port}/connz?subs=1"
        with urllib.request.urlopen(url, timeout=10) as response:
            connz = json.load(response)
        return {c.get("name") or f"{c['ip']}:{c['port']}": len(c.get("subscriptions_list", []))
                for c in connz["connections"]}  # fmt: skip

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> tuple[list[str], dict[str, str]]:
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        return [binary, "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor_port),
                "-js", "-sd", str(self.root / "js")], {}  # fmt: skip


class Mosquitto(Broker):
    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def command(self) -> tuple[list[str], dict[str, str]]:
        conf = self.root / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                        "persistence false\nmax_queued_messages 100000\n")  # fmt: skip
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        return [binary, "-c", str(conf)], {}


class RabbitMQ(Broker):
    """rabbitmq-server as its own node (own epmd port, cookie and data), as root."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.epmd_port = free_port()

    def stop(self) -> None:
        super().stop()
        # The node started its own epmd, which lives on as a daemon: end it too.
        subprocess.run(["epmd", "-port", str(self.epmd_port), "-kill"], capture_output=True,
                       env={**os.environ, "ERL_EPMD_PORT": str(self.epmd_port)}, timeout=10,
                       check=False)  # fmt: skip

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def command(self) -> tuple[list[str], dict[str, str]]:
        env = {
            "HOME": str(self.root),
            "RABBITMQ_NODENAME": f"bjtest{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq"),
        }
        return ["/usr/lib/rabbitmq/bin/rabbitmq-server"], env
