"""TRIGGER_RECONCILIATION vs a raw publisher loop, per target, same broker, one run.

A bucket of N objects; for each target kind (NATS JetStream, Redis stream, a local
webhook), in rounds: a plain loop awaiting each message before the next, and the fastest
raw loop, publish one S3 event record per object with the same
client and the same delivery guarantee as bucketjobs (JetStream acks, 1,000 publishes
pipelined then awaited; one Redis pipeline per 1,000 XADDs; 16 POSTs in flight, 2xx
each), from records built beforehand from one listing; then a TRIGGER_RECONCILIATION job
sends the bucket to a target of that kind (timed startTime → completeTime, listing and
bookkeeping included). Each side's receipt is counted on the broker (stream length,
webhook count): it must be N. The webhook receiver is a process of its own. Goal: job
rate >= 0.8x the raw rate.
Usage:  python bench/triggers.py --objects 20000 --repeat 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import nats
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import Service, cpu_seconds, cpu_used, run_job, s3_client, seed, service

from bucketjobs.notify.records import event_record, message
from tests.support.brokers import NatsServer, RedisServer
from tests.support.services import free_port

RECEIVER = textwrap.dedent("""
    import sys
    from aiohttp import web
    count = 0
    async def hook(request):
        global count
        await request.read()
        count += 1
        return web.Response(status=204)
    async def total(request):
        return web.Response(text=str(count))
    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/count", total)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
""")


async def listing(svc: Service, bucket: str) -> list[bytes]:
    """One record per object, as the job builds them (same bytes on the wire)."""
    records: list[bytes] = []
    async with s3_client(svc) as s3:
        async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                record = event_record(
                    bucket=bucket, key=item["Key"], size=item["Size"], etag=item["ETag"],
                    version_id=None, modified=item["LastModified"].astimezone(dt.UTC),
                    event_name="s3:ObjectCreated:Put", job_id=0, configuration_id="raw",
                )  # fmt: skip
                records.append(message(record))
    return records


class Kind:
    """One target kind: its broker, a raw publisher loop, and how to count receipts."""

    name = ""

    async def raw(self, messages: list[bytes]) -> None:
        """The fastest loop: batched or pipelined as the job sends."""
        raise NotImplementedError

    async def one_by_one(self, messages: list[bytes]) -> None:
        """The plain loop: each message awaited before the next."""
        raise NotImplementedError

    async def received(self) -> int:
        raise NotImplementedError

    async def reset(self) -> None:
        raise NotImplementedError

    def config(self) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class Nats(Kind):
    name = "NATS JetStream"

    def __init__(self, root: Path) -> None:
        self.server = NatsServer(root)
        self.server.start()

    async def reset(self) -> None:
        client = await nats.connect(self.server.url)
        stream = client.jetstream()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await stream.delete_stream("BENCH")
        await stream.add_stream(name="BENCH", subjects=["bench.events"])
        await client.close()

    async def raw(self, messages: list[bytes]) -> None:
        client = await nats.connect(self.server.url)
        stream = client.jetstream()
        for start in range(0, len(messages), 1000):  # acks awaited per 1,000, as a job does
            pending = [await stream.publish_async("bench.events", body)
                       for body in messages[start : start + 1000]]  # fmt: skip
            await asyncio.gather(*pending)
        await client.close()

    async def one_by_one(self, messages: list[bytes]) -> None:
        client = await nats.connect(self.server.url)
        stream = client.jetstream()
        for body in messages:
            await stream.publish("bench.events", body)
        await client.close()

    async def received(self) -> int:
        client = await nats.connect(self.server.url)
        info = await client.jetstream().stream_info("BENCH")
        await client.close()
        return int(info.state.messages)

    def config(self) -> tuple[str, dict[str, Any]]:
        return "NATS", {"url": self.server.url, "subject": "bench.events", "jetStream": "true"}

    def stop(self) -> None:
        self.server.stop()


class Redis(Kind):
    name = "Redis stream"

    def __init__(self, root: Path) -> None:
        self.server = RedisServer(root)
        self.server.start()
        self.client = aioredis.from_url(self.server.url)

    async def reset(self) -> None:
        await self.client.delete("bench")

    async def raw(self, messages: list[bytes]) -> None:
        for start in range(0, len(messages), 1000):
            pipe = self.client.pipeline(transaction=False)
            for body in messages[start : start + 1000]:
                pipe.xadd("bench", {"event": body})
            await pipe.execute()

    async def one_by_one(self, messages: list[bytes]) -> None:
        for body in messages:
            await self.client.xadd("bench", {"event": body})

    async def received(self) -> int:
        return int(await self.client.xlen("bench"))

    def config(self) -> tuple[str, dict[str, Any]]:
        return "REDIS", {"url": self.server.url, "mode": "STREAM", "key": "bench"}

    def stop(self) -> None:
        self.server.stop()


class Webhook(Kind):
    name = "webhook"

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        script = root / "receiver.py"
        script.write_text(RECEIVER)
        self.proc = subprocess.Popen([sys.executable, str(script), str(self.port)])
        self.base = f"http://127.0.0.1:{self.port}"
        self.offset = 0
        for _ in range(100):
            try:
                httpx.get(f"{self.base}/count", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)

    async def reset(self) -> None:
        self.offset = int(httpx.get(f"{self.base}/count").text)

    async def _post(self, http: aiohttp.ClientSession, body: bytes) -> None:
        headers = {"Content-Type": "application/json"}
        async with http.post(f"{self.base}/hook", data=body, headers=headers) as response:
            response.raise_for_status()
            await response.read()

    async def raw(self, messages: list[bytes]) -> None:
        connector = aiohttp.TCPConnector(limit=16)
        async with aiohttp.ClientSession(connector=connector) as http:
            gate = asyncio.Semaphore(16)

            async def one(body: bytes) -> None:
                async with gate:
                    await self._post(http, body)

            await asyncio.gather(*(one(m) for m in messages))

    async def one_by_one(self, messages: list[bytes]) -> None:
        async with aiohttp.ClientSession() as http:
            for body in messages:
                await self._post(http, body)

    async def received(self) -> int:
        return int(httpx.get(f"{self.base}/count").text) - self.offset

    def config(self) -> tuple[str, dict[str, Any]]:
        return "WEBHOOK", {"url": f"{self.base}/hook"}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


KINDS = {"nats": Nats, "redis": Redis, "webhook": Webhook}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=2, help="rounds per target kind")
    parser.add_argument("--targets", default="nats,redis,webhook")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bucketjobs-bench-triggers-"))
    with service(workers=1) as svc:
        await seed(svc, "trig", args.objects, size=64)
        messages = await listing(svc, "trig")
        assert len(messages) == args.objects
        admin = svc.client()
        print(f"{'target':<16} {'raw ev/s':>9} {'1-by-1':>9} {'job ev/s':>9} {'job/raw':>9}"
              f" {'job/1-by-1':>9}   CPU s (job run)")  # fmt: skip
        ratios = []
        for name in args.targets.split(","):
            (root / name).mkdir()
            kind = KINDS[name](root / name)
            try:
                kind_type, config = kind.config()
                body = {"name": name, "type": kind_type, "config": config}
                made = await admin.ok("/notification/target/create", body)
                tid = made["target"]["id"]
                await admin.ok("/notification/bucket/set", {"bucketName": "trig", "bindings": [
                    {"targetId": tid, "events": ["s3:ObjectCreated:*"]}]})  # fmt: skip
                raw_times, plain_times, job_times, cpu = [], [], [], ""
                for _ in range(args.repeat):
                    for loop, times in ((kind.raw, raw_times), (kind.one_by_one, plain_times)):
                        await kind.reset()
                        started = time.perf_counter()
                        await loop(messages)
                        times.append(time.perf_counter() - started)
                        assert await kind.received() == args.objects, kind.name
                    await kind.reset()
                    before = cpu_seconds()
                    seconds, done = await run_job(svc, "TRIGGER_RECONCILIATION", "trig")
                    cpu = cpu_used(before, cpu_seconds())
                    assert done["jobState"] == "COMPLETE", done
                    assert done["result"]["targets"][tid]["delivered"] == args.objects, done
                    assert await kind.received() >= args.objects, kind.name
                    job_times.append(seconds)
                raw_rate = args.objects / statistics.median(raw_times)
                plain_rate = args.objects / statistics.median(plain_times)
                job_rate = args.objects / statistics.median(job_times)
                ratios.append((kind.name, job_rate / raw_rate, job_rate / plain_rate))
                print(f"{kind.name:<16} {raw_rate:>9.0f} {plain_rate:>9.0f} {job_rate:>9.0f} "
                      f"{job_rate / raw_rate:>8.2f}x {job_rate / plain_rate:>8.2f}x   {cpu}",
                      flush=True)  # fmt: skip
                await admin.ok("/notification/bucket/set", {"bucketName": "trig", "bindings": []})
                await admin.ok("/notification/target/delete", {"id": tid})
            finally:
                kind.stop()
        await admin.close()
    for name, ratio, plain in ratios:
        print(f"{name}: job / raw {ratio:.2f}x (goal >= 0.8x), job / one-by-one {plain:.2f}x")
    print("bench ok")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    asyncio.run(main())
