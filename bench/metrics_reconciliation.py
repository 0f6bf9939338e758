"""METRIC_RECONCILIATION vs one sequential listing of the same bucket, on every bucket shape.

For each --shape (flat keys, one prefix, ~100 prefixes, a deep tree, a versioned bucket)
and size, seeds a bucket in a private SeaweedFS, then times the anchor (obstore's listing,
and `s5cmd ls`; for the versioned bucket our own client's ListObjectVersions, the fastest
raw version listing we have) and the job (its startTime → completeTime; median of
--repeat runs), checks every count, samples the service's peak RSS, and prints "job time /
its time" (below 1: the job was faster; the goal is ≤ 0.8 against the anchor).
Usage:  python bench/metrics_reconciliation.py --sizes 10000,100000 [--shape flat,deep]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import obstore
from obstore.store import S3Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import SHAPES, RssSampler, Service, run_job, seed, service, store_http, timed, tool

from bucketjobs.storage.lister import S3Lister


async def list_obstore(svc: Service, bucket: str) -> int:
    store = S3Store(bucket, endpoint=svc.endpoint, access_key_id=svc.access_key,
                    secret_access_key=svc.secret_key, region="us-east-1",
                    client_options={"allow_http": True})  # fmt: skip
    count = 0
    async for batch in obstore.list(store, chunk_size=1000):
        count += len(batch)
    return count


def list_s5cmd(svc: Service, bucket: str) -> int:
    s5cmd = tool("s5cmd")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": svc.access_key,
           "AWS_SECRET_ACCESS_KEY": svc.secret_key, "AWS_REGION": "us-east-1"}  # fmt: skip
    out = subprocess.run([s5cmd, "--endpoint-url", svc.endpoint, "ls", f"s3://{bucket}/*"],
                         env=env, check=True, capture_output=True).stdout  # fmt: skip
    return out.count(b"\n")


async def list_versions_raw(svc: Service, bucket: str) -> int:
    """The fastest raw version listing we have: our own lean client, one page at a time
    (obstore and s5cmd cannot list versions; aiobotocore is ten times slower)."""
    http = store_http(svc, 4)
    lister, count = S3Lister(http), 0
    key: str | None = None
    version: str | None = None
    try:
        while True:
            page = await lister.page(bucket, versions=True, after=key, version_marker=version)
            count += len(page.entries)
            if not page.truncated:
                return count
            key, version = page.next_key_marker, page.next_version_marker
    finally:
        await http.close()


async def measure(svc: Service, shape: str, size: int, repeat: int) -> dict[str, Any]:
    bucket = f"bench-{shape}-{size}"
    seeded = await seed(svc, bucket, size, shape=shape)
    rows: dict[str, tuple[float, int]] = {}
    if shape == "versioned":
        anchor = "own client ListObjectVersions (sequential)"
        rows[anchor] = await timed(lambda: list_versions_raw(svc, bucket), repeat)
    else:
        anchor = "obstore list (sequential)"
        rows[anchor] = await timed(lambda: list_obstore(svc, bucket), repeat)
        rows["s5cmd ls"] = await timed(lambda: list_s5cmd(svc, bucket), repeat)

    async def job() -> tuple[float, int]:
        seconds, done = await run_job(svc, "METRIC_RECONCILIATION", bucket)
        assert done["jobState"] == "COMPLETE", done
        return seconds, int(done["result"]["metrics"]["objectCount"])

    pids = {f"proc{n}": p.pid for n, p in enumerate(svc.processes)}
    with RssSampler(pids) as rss:
        runs = [await job() for _ in range(repeat)]
    rows[JOB] = (statistics.median(r[0] for r in runs), runs[-1][1])
    for name, (_, count) in rows.items():
        assert count == size, f"{name} saw {count} of {size}"
    return {"shape": shape, "size": size, "seed_s": seeded, "rows": rows, "anchor": anchor,
            "peak_rss": max(rss.peak.values())}  # fmt: skip


JOB = "bucketjobs METRIC_RECONCILIATION"


def report(result: dict[str, Any]) -> None:
    size, rows = result["size"], result["rows"]
    job_s = rows[JOB][0]
    print(f"\n{result['shape']}, {size:,} objects (seeded in {result['seed_s']:.1f}s;"
          " median of the runs; the job from its startTime to its completeTime)")  # fmt: skip
    print(f"  {'what':44} {'seconds':>8} {'keys/s':>10} {'job time / its time':>20}")
    for name, (secs, _) in rows.items():
        print(f"  {name:44} {secs:8.2f} {size / secs:10,.0f} {job_s / secs:19.2f}x")
    print(f"  peak RSS of the busiest bucketjobs process: {result['peak_rss'] / 2**20:.0f} MiB")


def summary(results: list[dict[str, Any]]) -> None:
    print(f"\n{'shape':12} {'objects':>10} {'anchor s':>9} {'job s':>7} {'job / anchor':>13}"
          "  (goal ≤ 0.80)")  # fmt: skip
    for r in results:
        anchor, job = r["rows"][r["anchor"]][0], r["rows"][JOB][0]
        mark = "ok" if job / anchor <= 0.8 else "OVER"
        print(f"{r['shape']:12} {r['size']:>10,} {anchor:9.2f} {job:7.2f}"
              f" {job / anchor:12.2f}x  {mark}")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--shape", default=",".join(SHAPES),
                        help=f"comma-separated, of {', '.join(SHAPES)}")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    shapes = args.shape.split(",")
    unknown = set(shapes) - set(SHAPES)
    if unknown:
        parser.error(f"unknown shape {', '.join(sorted(unknown))}")
    with service(workers=args.workers) as svc:
        results = [await measure(svc, shape, size, args.repeat)
                   for shape in shapes for size in sizes]  # fmt: skip
    for result in results:
        report(result)
    summary(results)
    peaks = [r["peak_rss"] for r in results]
    print(f"\npeak RSS over every run: {min(peaks) / 2**20:.0f} to {max(peaks) / 2**20:.0f} MiB")
    print("bench ok")


if __name__ == "__main__":
    asyncio.run(main())
