"""Bounded memory: METRIC_RECONCILIATION, a LIFECYCLE_UPDATE preview (dry run over every
object) and BATCH_REPLICATE of a large bucket while the resident memory of every
bucketjobs process is sampled. Fails if any process goes above
--limit-mb or grows with the bucket. Usage:  python bench/memory.py --objects 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RssSampler, Service, run_job, seed, service

MB = 1_000_000
EXPIRE_ALL = json.dumps(
    {"Rules": [{"ID": "all", "Status": "Enabled", "Filter": {},
                "Expiration": {"Date": "2020-01-01T00:00:00Z"}}]}
)  # fmt: skip


async def measure(svc: Service, objects: int, jobs: list[str]) -> dict[str, Any]:
    seeded = await seed(svc, "mem-src", objects, prefixes=100)
    pids = {f"{p.args[3]}-{n}": p.pid for n, p in enumerate(svc.processes)}  # type: ignore[index]
    rows: dict[str, Any] = {}
    if "metrics" in jobs:
        with RssSampler(pids) as rss:
            seconds, done = await run_job(svc, "METRIC_RECONCILIATION", "mem-src")
        assert done["jobState"] == "COMPLETE", done
        assert done["result"]["metrics"]["objectCount"] == objects, done["result"]
        rows["METRIC_RECONCILIATION"] = (seconds, dict(rss.peak))
    if "lifecycle" in jobs:
        params = {"lifecycleConfiguration": EXPIRE_ALL, "dryRun": "true"}
        with RssSampler(pids) as rss:
            seconds, done = await run_job(svc, "LIFECYCLE_UPDATE", "mem-src", **params)
        assert done["jobState"] == "COMPLETE", done
        assert done["result"]["expired"] == objects, done["result"]
        rows["LIFECYCLE_UPDATE (dry run)"] = (seconds, dict(rss.peak))
    if "replicate" in jobs:
        await seed(svc, "mem-dst", 0)
        params = {"destinationBucket": "mem-dst", "replicationFilter": "ALL"}
        with RssSampler(pids) as rss:
            seconds, done = await run_job(svc, "BATCH_REPLICATE", "mem-src", **params)
        assert done["jobState"] == "COMPLETE", done
        assert done["jobStats"]["processed"] == objects, done["jobStats"]
        rows["BATCH_REPLICATE"] = (seconds, dict(rss.peak))
    return {"objects": objects, "seed_s": seeded, "rows": rows}


def report(result: dict[str, Any], limit_mb: float) -> bool:
    print(f"\n{result['objects']:,} objects (seeded in {result['seed_s']:.0f} s)")
    ok = True
    for job, (seconds, peaks) in result["rows"].items():
        print(f"  {job}: {seconds:.1f} s")
        for name, peak in peaks.items():
            over = peak > limit_mb * MB
            ok &= not over
            print(f"    peak RSS {name:12} {peak / MB:7.0f} MB{'  OVER THE LIMIT' if over else ''}")
    return ok


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--limit-mb", type=float, default=250)
    parser.add_argument("--jobs", default="metrics,lifecycle,replicate",
                        help="comma-separated: metrics, lifecycle, replicate")  # fmt: skip
    args = parser.parse_args()
    with service(workers=1) as svc:
        result = await measure(svc, args.objects, args.jobs.split(","))
    if not report(result, args.limit_mb):
        raise SystemExit(f"a process went above {args.limit_mb:g} MB")
    print("bench ok")


if __name__ == "__main__":
    asyncio.run(main())
