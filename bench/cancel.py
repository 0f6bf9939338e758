"""Cancel seen from outside: how long objects keep landing, and whether the counts are true.

Seeds a bucket, then per run starts a BATCH_REPLICATE job into a fresh bucket (same store),
cancels it after a delay, and watches the destination by
listing it over and over, before and after the cancel returns. It prints, per run:

- `last write`: when the destination's count last grew, after the cancel returned, as an
  upper bound (the end of the first listing that saw the final count; a listing of a few
  thousand keys takes well under 0.1 s here). Goal: at most 1 s.
- the job's `processed` one second after the cancel and at the end of the watch (SPEC:
  they no longer change after 1 s), against the objects actually in the destination
  (a fresh bucket: every object there is one the job copied).

Usage:  python bench/cancel.py --objects 20000 --runs 5 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Service, seed, service, store_http

from bucketjobs.storage.http import S3Http
from bucketjobs.storage.lister import S3Lister

_names = itertools.count(1)


async def count(lister: S3Lister, bucket: str) -> int:
    total, after = 0, None
    while True:
        page = await lister.page(bucket, versions=False, after=after)
        total += len(page.entries)
        if not page.truncated or not page.entries:
            return total
        after = page.entries[-1].key


async def watch(lister: S3Lister, bucket: str, until: float) -> list[tuple[float, float, int]]:
    """(start, end, count) of back-to-back listings of `bucket` until `until`."""
    polls = []
    while time.monotonic() < until:
        start = time.monotonic()
        found = await count(lister, bucket)
        polls.append((start, time.monotonic(), found))
    return polls


def last_write(polls: list[tuple[float, float, int]], cancelled_at: float) -> float:
    """Seconds from the cancel's return to the end of the first listing that saw the final
    count (≤ 0: the count had stopped growing before the cancel returned)."""
    final = polls[-1][2]
    first_final = next(end for _, end, found in polls if found == final)
    return first_final - cancelled_at


async def one_run(
    svc: Service, http: S3Http, source: str, delay: float, watch_s: float
) -> dict[str, Any]:
    lister = S3Lister(http)
    dst = f"cancel-dst-{next(_names)}"
    await http.request("PUT", dst)
    api = svc.client()
    try:
        job = await api.create(
            "BATCH_REPLICATE", source, destinationBucket=dst, replicationFilter="ALL"
        )
        job_id = job["jobId"]["id"]
        await api.login()  # the cancel below pays no login
        await asyncio.sleep(delay)
        watcher = asyncio.create_task(watch(lister, dst, time.monotonic() + 0.2 + watch_s))
        await asyncio.sleep(0.2)  # a listing or two before the cancel
        cancelled = await api.ok("/jobs/cancel", {"jobId": {"id": job_id}})
        cancelled_at = time.monotonic()
        assert cancelled["status"]["jobState"] == "CANCELLED", cancelled
        await asyncio.sleep(1.0 - (time.monotonic() - cancelled_at))
        at_one_second = (await api.status(job_id))["jobStats"]
        polls = await watcher
    finally:
        await api.close()
    return {"job": job_id, "delay": delay, "cancelled_at": cancelled_at, "polls": polls,
            "at_one_second": at_one_second}  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--watch", type=float, default=3.0, help="seconds watched after cancel")
    parser.add_argument("--min-delay", type=float, default=1.0)
    parser.add_argument("--max-delay", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with service(workers=args.workers) as svc:
        http = store_http(svc)
        try:
            await seed(svc, "cancel-src", args.objects, size=args.size)
            rows = []
            for _ in range(args.runs):
                delay = rng.uniform(args.min_delay, args.max_delay)
                rows.append(await one_run(svc, http, "cancel-src", delay, args.watch))
            api = svc.client()
            try:
                for row in rows:
                    row["final"] = (await api.status(row["job"]))["jobStats"]
            finally:
                await api.close()
        finally:
            await http.close()
    report(rows)


def report(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'run':>3} {'cancel after':>12} {'last write':>11} {'in destination':>15}"
          f" {'processed at 1 s':>17} {'processed at end':>17}  counts")  # fmt: skip
    worst, exact = -1e9, True
    for n, row in enumerate(rows, 1):
        polls = row["polls"]
        landed = polls[-1][2]
        late = last_write(polls, row["cancelled_at"])
        first, final = row["at_one_second"]["processed"], row["final"]["processed"]
        ok = first == final == landed
        exact &= ok
        worst = max(worst, late)
        print(f"{n:>3} {row['delay']:>11.2f}s {late:>10.2f}s {landed:>15,} {first:>17,}"
              f" {final:>17,}  {'exact' if ok else 'WRONG'}")  # fmt: skip
    print(f"\nworst last write after cancel returned: {worst:.2f} s (goal ≤ 1 s);"
          f" counts {'exact in every run' if exact else 'WRONG in some run'}")  # fmt: skip
    print("bench ok")


if __name__ == "__main__":
    asyncio.run(main())
