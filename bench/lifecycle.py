"""LIFECYCLE_UPDATE expiring a whole bucket vs `s5cmd rm 's3://b/*'`, same SeaweedFS.

For each size, in rounds (so a slow spell of the machine hits both alike): a fresh bucket
of N objects is emptied by a LIFECYCLE_UPDATE job whose one rule expires everything
(`Expiration.Date` in the past; timed from the job's startTime to its completeTime), then
another fresh bucket by s5cmd (timed from start to exit). Every bucket must end empty.
Prints objects/s and "job rate / s5cmd rate" (above 1: the job was faster; the goal is
≥ 1.25), and the service's peak RSS per size (it should not grow with the bucket).
Usage:  python bench/lifecycle.py --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    SHAPES,
    RssSampler,
    Service,
    cpu_seconds,
    cpu_used,
    run_job,
    s3_client,
    seed,
    service,
    tool,
)

POLICY = json.dumps(
    {"Rules": [{"ID": "all", "Status": "Enabled", "Filter": {},
                "Expiration": {"Date": "2020-01-01T00:00:00Z"}}]}
)  # fmt: skip
_names = itertools.count(1)


async def remaining(client: Any, bucket: str) -> int:
    total = 0
    async for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        total += len(page.get("Contents", ()))
    return total


def s5cmd_rm(svc: Service, bucket: str) -> float:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": svc.access_key,
           "AWS_SECRET_ACCESS_KEY": svc.secret_key, "AWS_REGION": "us-east-1"}  # fmt: skip
    started = time.perf_counter()
    subprocess.run([tool("s5cmd"), "--endpoint-url", svc.endpoint, "rm", f"s3://{bucket}/*"],
                   env=env, check=True, capture_output=True)  # fmt: skip
    return time.perf_counter() - started


async def measure(svc: Service, size: int, repeat: int, shape: str) -> dict[str, Any]:
    times: dict[str, list[float]] = {"bucketjobs LIFECYCLE_UPDATE": [], "s5cmd rm": []}
    pids = {f"proc{n}": p.pid for n, p in enumerate(svc.processes)}
    async with s3_client(svc) as client:
        with RssSampler(pids) as rss:
            for _ in range(repeat):
                bucket = f"bench-lc-{next(_names)}"
                await seed(svc, bucket, size, shape=shape)
                before = cpu_seconds()
                seconds, done = await run_job(
                    svc, "LIFECYCLE_UPDATE", bucket, lifecycleConfiguration=POLICY
                )
                job_cpu = cpu_used(before, cpu_seconds())
                assert done["jobState"] == "COMPLETE", done
                assert done["result"]["expired"] == size, done["result"]
                assert await remaining(client, bucket) == 0, f"{bucket} is not empty"
                times["bucketjobs LIFECYCLE_UPDATE"].append(seconds)

                bucket = f"bench-rm-{next(_names)}"
                await seed(svc, bucket, size, shape=shape)
                before = cpu_seconds()
                times["s5cmd rm"].append(await asyncio.to_thread(s5cmd_rm, svc, bucket))
                tool_cpu = cpu_used(before, cpu_seconds())
                assert await remaining(client, bucket) == 0, f"{bucket} is not empty"
                print(f"  round: job {times['bucketjobs LIFECYCLE_UPDATE'][-1]:.2f} s"
                      f" (CPU s: {job_cpu}), s5cmd {times['s5cmd rm'][-1]:.2f} s"
                      f" (CPU s: {tool_cpu})", flush=True)  # fmt: skip
    rows = {name: statistics.median(values) for name, values in times.items()}
    return {"size": size, "rows": rows, "rss": max(rss.peak.values())}


def report(results: list[dict[str, Any]]) -> None:
    print(f"\n  {'objects':>9} {'what':28} {'seconds':>8} {'objects/s':>10} "
          f"{'job rate / its rate':>20}")  # fmt: skip
    for result in results:
        rows, size = result["rows"], result["size"]
        job = rows["bucketjobs LIFECYCLE_UPDATE"]
        for name, seconds in rows.items():
            ratio = seconds / job
            mark = "" if name.startswith("bucketjobs") else ("  ok" if ratio >= 1.25 else "  UNDER")
            print(f"  {size:9,} {name:28} {seconds:8.2f} {size / seconds:10,.0f}"
                  f" {ratio:19.2f}x{mark}")  # fmt: skip
    print()
    for result in results:
        print(f"  peak RSS of the busiest bucketjobs process at {result['size']:,} objects:"
              f" {result['rss'] / 2**20:.0f} MiB")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="rounds per size (median)")
    parser.add_argument(
        "--shape",
        default="prefixes",
        choices=SHAPES[:-1],
        help="the buckets' key layout (bench/harness.py shaped_key)",
    )
    args = parser.parse_args()
    results = []
    with service(workers=args.workers) as svc:
        for size in (int(s) for s in args.sizes.split(",")):
            results.append(await measure(svc, size, args.repeat, args.shape))
    report(results)
    print("bench ok")


if __name__ == "__main__":
    asyncio.run(main())
