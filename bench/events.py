"""What idle `jobs/events` streams cost the API: memory and CPU per subscriber.

A TRIGGER_RECONCILIATION job is held still (its one delivery goes to a webhook that takes
a minute to answer), N clients open its event stream and read the snapshot, then nothing
changes for --idle seconds. Printed: the API process's resident memory before and with
the streams open, and the CPU it spent while they sat idle (the goal: a few MB for 200,
and no CPU beyond pings every 15 s). Then one change (a cancel) must reach every stream.
Usage:  python bench/events.py --subscribers 200 --idle 10
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx
import psutil
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import seed, service

from bucketjobs.storage.embedded import free_port
from tests.support.mapi import REALM_TOKEN


async def _slow_hook(port: int) -> web.AppRunner:
    async def hook(request: web.Request) -> web.Response:
        if request.method == "POST":
            await asyncio.sleep(60)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_route("*", "/hook", hook)
    # Its one request hangs on purpose: leave it at the end rather than wait a minute.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds the streams sit idle")
    args = parser.parse_args()
    port = free_port()
    hook = await _slow_hook(port)
    with service(workers=1) as svc:
        await seed(svc, "still", 1)
        admin = svc.client()
        made = await admin.ok("/notification/target/create", {
            "name": "slow", "type": "WEBHOOK",
            "config": {"url": f"http://127.0.0.1:{port}/hook"}})  # fmt: skip
        await admin.ok("/notification/bucket/set", {"bucketName": "still", "bindings": [
            {"targetId": made["target"]["id"], "events": ["s3:ObjectCreated:*"]}]})  # fmt: skip
        job = await admin.create("TRIGGER_RECONCILIATION", "still")
        job_id = job["jobId"]["id"]
        await asyncio.sleep(2.0)  # the planner is now waiting on the webhook
        assert (await admin.status(job_id))["jobState"] in ("EXAMINING", "EXECUTING")
        api = psutil.Process(svc.processes[0].pid)
        form = {"grant_type": "password", "username": "admin", "client_id": "admin-cli",
                "password": admin.password}  # fmt: skip
        limits = httpx.Limits(max_connections=args.subscribers + 10)
        async with httpx.AsyncClient(base_url=svc.base_url, limits=limits, timeout=120) as http:
            token = (await http.post(REALM_TOKEN, data=form)).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            rss_before = api.memory_info().rss
            opened = asyncio.Event()
            first_seen = 0
            changes = 0

            async def subscriber() -> None:
                nonlocal first_seen, changes
                async with http.stream("GET", "/mapi/v1/jobs/events", params={"jobId": job_id},
                                       headers=headers) as answer:  # fmt: skip
                    assert answer.status_code == 200
                    events = 0
                    async for line in answer.aiter_lines():
                        if line.startswith("data: "):
                            events += 1
                            if events == 1:
                                first_seen += 1
                                if first_seen == args.subscribers:
                                    opened.set()
                            else:
                                changes += 1
                                return

            streams = [asyncio.create_task(subscriber()) for _ in range(args.subscribers)]
            await asyncio.wait_for(opened.wait(), 60)
            await asyncio.sleep(0.5)
            rss_open = api.memory_info().rss
            cpu = api.cpu_times()
            started = time.perf_counter()
            await asyncio.sleep(args.idle)
            idle_cpu = sum(api.cpu_times()[:2]) - sum(cpu[:2])
            idle_for = time.perf_counter() - started
            cancelled_at = time.perf_counter()
            await admin.ok("/jobs/cancel", {"jobId": {"id": job_id}})
            await asyncio.wait_for(asyncio.gather(*streams), 30)
            fan_out = time.perf_counter() - cancelled_at
        await admin.close()
    await hook.cleanup()
    grew = (rss_open - rss_before) / 2**20
    print(f"subscribers {args.subscribers}: API RSS {rss_before / 2**20:.1f} MiB before,"
          f" {rss_open / 2**20:.1f} MiB with the streams open (+{grew:.2f} MiB,"
          f" {grew * 1024 / args.subscribers:.1f} KiB each)")  # fmt: skip
    print(f"idle {idle_for:.1f} s: API CPU {idle_cpu * 1000:.0f} ms"
          f" ({idle_cpu / idle_for * 100:.2f} % of a core)")  # fmt: skip
    print(f"one change (the cancel) reached {changes} of {args.subscribers} streams"
          f" in {fan_out * 1000:.0f} ms")  # fmt: skip
    assert changes == args.subscribers
    print("bench ok")


if __name__ == "__main__":
    asyncio.run(main())
