"""METRIC_RECONCILIATION of one bucket with 1, 2 and 4 worker processes (`--no-inline`:
every partition is queued, so workers share the listing work), first against the store
directly, then with latency added in front of it by the test suite's fault proxy. Prints
each run's CPU seconds by process kind: on a two-core host that says what bound it.
Usage:  python bench/scaling.py --objects 200000 [--latency-ms 100 --concurrency 1]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import Service, cpu_seconds, cpu_used, run_job, seed, service

from bucketjobs.storage.components import endpoint_location
from tests.support.faultproxy import FaultProxy


class ProxyThread:
    """The fault proxy on an event loop of its own (the bench's loop waits on jobs)."""

    def __init__(self, upstream: str, latency: float) -> None:
        self.proxy = FaultProxy(upstream, latency=latency)
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.url = asyncio.run_coroutine_threadsafe(self.proxy.start(), self.loop).result()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.stop(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)


async def point_primary_at(svc: Service, endpoint: str) -> None:
    """Move the primary component to `endpoint` (the proxy, or the store itself)."""
    api = svc.client()
    try:
        primary = next(c for c in await api.ok("/storage_component/list", {}) if c["primary"])
        config = {k: v for k, v in primary["storageComponentConfig"].items() if k != "listingOrder"}
        config.update(endpoint_location(endpoint))
        await api.ok("/storage_component/update", {"id": primary["id"],
                                                   "storageComponentConfig": config})  # fmt: skip
    finally:
        await api.close()


async def series(svc: Service, bucket: str, objects: int, counts: list[int], concurrency: int,
                 label: str) -> dict[int, float]:  # fmt: skip
    seconds: dict[int, float] = {}
    for count in counts:
        workers = [svc.start_worker(concurrency, inline=False) for _ in range(count)]
        time.sleep(2)  # registered and listening
        try:
            before = cpu_seconds()
            took, done = await run_job(svc, "METRIC_RECONCILIATION", bucket)
            cpu = cpu_used(before, cpu_seconds())
        finally:
            for worker in workers:
                svc.stop(worker)
        assert done["jobState"] == "COMPLETE", done
        assert done["result"]["metrics"]["objectCount"] == objects, done["result"]
        seconds[count] = took
        print(f"  {label}: {count} worker(s) x concurrency {concurrency}: {took:6.2f} s"
              f" {objects / took:10,.0f} objects/s   CPU s: {cpu}", flush=True)  # fmt: skip
    return seconds


def report(name: str, seconds: dict[int, float]) -> None:
    one = seconds[min(seconds)]
    speedups = ", ".join(f"{n}: {one / s:.2f}x" for n, s in seconds.items())
    print(f"{name} speed-up over one worker — {speedups}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=200_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=1, help="steps per worker")
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--latency-only", action="store_true", help="skip the direct series")
    parser.add_argument("--prefixes", type=int, default=16, help="top-level prefixes seeded")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    with service(workers=0) as svc:
        seeded = await seed(svc, "scale", args.objects, prefixes=args.prefixes)
        print(f"{args.objects:,} objects under {args.prefixes} prefixes (seeded in {seeded:.0f} s)")
        direct = {}
        if not args.latency_only:
            direct = await series(svc, "scale", args.objects, counts, args.concurrency, "direct")
        proxy = ProxyThread(svc.endpoint, args.latency_ms / 1000)
        try:
            await point_primary_at(svc, proxy.url)
            label = f"+{args.latency_ms:g} ms"
            slow = await series(svc, "scale", args.objects, counts, args.concurrency, label)
        finally:
            await point_primary_at(svc, svc.endpoint)
            proxy.close()
    if direct:
        report("direct", direct)
    report(f"+{args.latency_ms:g} ms per request", slow)
    print("bench ok")


if __name__ == "__main__":
    asyncio.run(main())
