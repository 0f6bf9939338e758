"""TRIGGER_RECONCILIATION vs raw publisher loops, per target, same broker, one run.

A bucket of N objects; for each target kind (NATS JetStream, Redis stream, a local
webhook), in rounds, three raw loops publish one S3 event record per object with the same
client and the same delivery guarantee as bucketjobs (JetStream acks; Redis replies;
webhook 2xx), then a TRIGGER_RECONCILIATION job sends the bucket to a target of that kind
(timed startTime → completeTime, listing and bookkeeping included):
- list+send, the same work as the job: obstore lists the bucket 1,000 keys at a time while
  the batch before is sent, pipelined (1,000 JetStream publishes then their acks; one
  Redis pipeline per 1,000 XADDs; 16 POSTs in flight). The goal: job >= 0.8x its rate.
- send-only: the same batches from records built beforehand (no listing): the bound of
  the client and the broker alone.
- 1-by-1: each message awaited before the next, what a simple script does.
Each side's receipt is counted on the broker (stream length, webhook count): it must be
N. The webhook receiver is a process of its own.
Usage:  python bench/triggers.py --objects 20000 --repeat 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
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
import obstore
import redis.asyncio as aioredis
from obstore.store import S3Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import Service, cpu_seconds, cpu_used, run_job, s3_client, seed, service

from bucketjobs.notify.records import Messages, event_record, message
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
    """One target kind: its broker, how the raw loops send a batch, how to count receipts."""

    name = ""

    async def open(self) -> None:
        """Connect the raw loops' client."""

    async def send_batch(self, batch: list[bytes]) -> None:
        """Deliver a batch with the job's guarantee, pipelined as the job sends it."""
        raise NotImplementedError

    async def close(self) -> None:
        """Close the raw loops' client."""

    async def raw(self, messages: list[bytes]) -> None:
        """The fastest loop from records built beforehand: batches of 1,000."""
        for start in range(0, len(messages), 1000):
            await self.send_batch(messages[start : start + 1000])

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


async def list_and_send(svc: Service, bucket: str, kind: Kind) -> None:
    """The same work as the job, as a script would do it fast: obstore lists the bucket
    1,000 keys at a time while the batch before is sent; records built as the job builds them."""
    store = S3Store(bucket, endpoint=svc.endpoint, access_key_id=svc.access_key,
                    secret_access_key=svc.secret_key, region="us-east-1",
                    client_options={"allow_http": True})  # fmt: skip
    queue: asyncio.Queue[list[bytes] | None] = asyncio.Queue(maxsize=2)
    records = Messages(bucket=bucket, event_name="s3:ObjectCreated:Put", job_id=0,
                       configuration_id="raw")  # fmt: skip

    async def produce() -> None:
        async for chunk in obstore.list(store, chunk_size=1000):
            batch = [
                records.render(m["path"], m["size"], m["e_tag"] or "", None, m["last_modified"])
                for m in chunk
            ]
            await queue.put(batch)
        await queue.put(None)

    producer = asyncio.create_task(produce())
    while (batch := await queue.get()) is not None:
        await kind.send_batch(batch)
    await producer


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

    async def open(self) -> None:
        self.client = await nats.connect(self.server.url)
        self.stream = self.client.jetstream()

    async def send_batch(self, batch: list[bytes]) -> None:
        pending = [await self.stream.publish_async("bench.events", body) for body in batch]
        await asyncio.gather(*pending)

    async def close(self) -> None:
        await self.client.close()

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

    async def send_batch(self, batch: list[bytes]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for body in batch:
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

    async def open(self) -> None:
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16))
        self.gate = asyncio.Semaphore(16)

    async def send_batch(self, batch: list[bytes]) -> None:
        async def one(body: bytes) -> None:
            async with self.gate:
                await self._post(self.http, body)

        await asyncio.gather(*(one(m) for m in batch))

    async def close(self) -> None:
        await self.http.close()

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
        print(f"{'target':<16} {'send-only':>9} {'list+send':>9} {'1-by-1':>8} {'job':>8}"
              f" {'job/list+send':>13} {'job/send-only':>13} {'job/1-by-1':>10}"
              "   CPU s (job run)")  # fmt: skip
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
                await kind.open()
                loops = {
                    "send-only": functools.partial(kind.raw, messages),
                    "list+send": functools.partial(list_and_send, svc, "trig", kind),
                    "1-by-1": functools.partial(kind.one_by_one, messages),
                }
                times: dict[str, list[float]] = {k: [] for k in [*loops, "job"]}
                cpu = ""
                for _ in range(args.repeat):
                    for loop_name, loop in loops.items():
                        await kind.reset()
                        started = time.perf_counter()
                        await loop()
                        times[loop_name].append(time.perf_counter() - started)
                        assert await kind.received() == args.objects, (kind.name, loop_name)
                    await kind.reset()
                    before = cpu_seconds()
                    seconds, done = await run_job(svc, "TRIGGER_RECONCILIATION", "trig")
                    cpu = cpu_used(before, cpu_seconds())
                    assert done["jobState"] == "COMPLETE", done
                    assert done["result"]["targets"][tid]["delivered"] == args.objects, done
                    assert await kind.received() >= args.objects, kind.name
                    times["job"].append(seconds)
                await kind.close()
                rate = {k: args.objects / statistics.median(v) for k, v in times.items()}
                same_work = rate["job"] / rate["list+send"]
                ratios.append((kind.name, same_work, rate["job"] / rate["send-only"],
                               rate["job"] / rate["1-by-1"]))  # fmt: skip
                print(f"{kind.name:<16} {rate['send-only']:>9.0f} {rate['list+send']:>9.0f}"
                      f" {rate['1-by-1']:>8.0f} {rate['job']:>8.0f} {same_work:>12.2f}x"
                      f" {ratios[-1][2]:>12.2f}x {ratios[-1][3]:>9.2f}x   {cpu}",
                      flush=True)  # fmt: skip
                await admin.ok("/notification/bucket/set", {"bucketName": "trig", "bindings": []})
                await admin.ok("/notification/target/delete", {"id": tid})
            finally:
                kind.stop()
        await admin.close()
    for name, same_work, send_only, plain in ratios:
        print(f"{name}: job / list+send {same_work:.2f}x (goal >= 0.8x);"
              f" job / send-only {send_only:.2f}x; job / one-by-one {plain:.2f}x")  # fmt: skip
    print("bench ok")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    asyncio.run(main())
