"""METRIC_RECONCILIATION vs one sequential listing (obstore, aiobotocore) and `s5cmd ls`.

Seeds a bucket per size in a private SeaweedFS, then in one run times each anchor and the
job (create → COMPLETE; median of --repeat runs), checks every count, samples the
service's peak RSS, and prints the ratios ("its time / job time" above 1 means the job was
faster). Usage:  python bench/metrics_reconciliation.py --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import obstore
from obstore.store import S3Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RssSampler, Service, run_job, s3_client, seed, service, timed, tool


async def list_obstore(svc: Service, bucket: str) -> int:
    store = S3Store(bucket, endpoint=svc.endpoint, access_key_id=svc.access_key,
                    secret_access_key=svc.secret_key, region="us-east-1",
                    client_options={"allow_http": True})  # fmt: skip
    count = 0
    async for batch in obstore.list(store, chunk_size=1000):
        count += len(batch)
    return count


async def list_aiobotocore(svc: Service, bucket: str) -> int:
    count = 0
    async with s3_client(svc) as client:
        paginator = client.get_paginator("list_object_versions")
        async for page in paginator.paginate(Bucket=bucket):
            count += len(page.get("Versions", ())) + len(page.get("DeleteMarkers", ()))
    return count


def list_s5cmd(svc: Service, bucket: str) -> int:
    s5cmd = tool("s5cmd")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": svc.access_key,
           "AWS_SECRET_ACCESS_KEY": svc.secret_key, "AWS_REGION": "us-east-1"}  # fmt: skip
    out = subprocess.run([s5cmd, "--endpoint-url", svc.endpoint, "ls", f"s3://{bucket}/*"],
                         env=env, check=True, capture_output=True).stdout  # fmt: skip
    return out.count(b"\n")


async def measure(svc: Service, size: int, repeat: int) -> dict[str, Any]:
    bucket = f"bench-{size}"
    seeded = await seed(svc, bucket, size)
    rows: dict[str, tuple[float, int]] = {}
    rows["obstore list (sequential)"] = await timed(lambda: list_obstore(svc, bucket), repeat)
    rows["aiobotocore list versions"] = await timed(lambda: list_aiobotocore(svc, bucket), 1)
    rows["s5cmd ls"] = await timed(lambda: list_s5cmd(svc, bucket), repeat)

    async def job() -> int:
        _, done = await run_job(svc, "METRIC_RECONCILIATION", bucket)
        assert done["jobState"] == "COMPLETE", done
        return int(done["result"]["metrics"]["objectCount"])

    pids = {f"proc{n}": p.pid for n, p in enumerate(svc.processes)}
    with RssSampler(pids) as rss:
        rows["bucketjobs METRIC_RECONCILIATION"] = await timed(job, repeat)
    for name, (_, count) in rows.items():
        assert count == size, f"{name} saw {count} of {size}"
    return {"size": size, "seed_s": seeded, "rows": rows, "peak_rss": max(rss.peak.values())}


def report(result: dict[str, Any]) -> None:
    size, rows = result["size"], result["rows"]
    job_s = rows["bucketjobs METRIC_RECONCILIATION"][0]
    print(f"\n{size:,} objects (seeded in {result['seed_s']:.1f}s; median of the runs)")
    print(f"  {'what':36} {'seconds':>8} {'keys/s':>10} {'its time / job time':>20}")
    for name, (secs, _) in rows.items():
        print(f"  {name:36} {secs:8.2f} {size / secs:10,.0f} {secs / job_s:19.2f}x")
    print(f"  peak RSS of the busiest bucketjobs process: {result['peak_rss'] / 2**20:.0f} MiB")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with service(workers=args.workers) as svc:
        results = [await measure(svc, size, args.repeat) for size in sizes]
    for result in results:
        report(result)
    if len(results) > 1:
        first, last = results[0], results[-1]
        print(f"\nRSS {first['size']:,} → {last['size']:,} objects: "
              f"{first['peak_rss'] / 2**20:.0f} → {last['peak_rss'] / 2**20:.0f} MiB")  # fmt: skip
    print("bench ok")


if __name__ == "__main__":
    asyncio.run(main())
