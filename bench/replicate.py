"""BATCH_REPLICATE vs `s5cmd cp` and `rclone copy`, same store and across endpoints.

Seeds N small objects in a private SeaweedFS, then in one run copies the bucket with each
tool into a fresh destination bucket (median of --repeat runs), checks that every copy is
complete, and prints the ratios ("its time / job time" above 1 means the job was faster).
bucketjobs is timed from the job's creation to COMPLETE; the tools from start to exit.
Usage:  python bench/replicate.py --objects 10000 --size 1024
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    Remote,
    Service,
    cpu_seconds,
    cpu_used,
    run_job,
    s3_client,
    seed,
    service,
    timed,
    tool,
)

from bucketjobs.storage.components import endpoint_location
from tests.support.mapi import Mapi

_names = itertools.count(1)


def _env(svc: Service) -> dict[str, str]:
    return {**os.environ, "AWS_ACCESS_KEY_ID": svc.access_key,
            "AWS_SECRET_ACCESS_KEY": svc.secret_key, "AWS_REGION": "us-east-1"}  # fmt: skip


def rclone_config(svc: Service) -> Path:
    """Two rclone remotes: `src` (the service's store) and `dst` (the remote one)."""
    path = svc.root / "rclone.conf"
    lines = []
    for name, (endpoint, access, secret) in {
        "src": (svc.endpoint, svc.access_key, svc.secret_key),
        "dst": (svc.remote.endpoint, svc.remote.access_key, svc.remote.secret_key)
        if svc.remote else (svc.endpoint, svc.access_key, svc.secret_key),
    }.items():  # fmt: skip
        lines += [f"[{name}]", "type = s3", "provider = SeaweedFS", f"endpoint = {endpoint}",
                  f"access_key_id = {access}", f"secret_access_key = {secret}", ""]  # fmt: skip
    path.write_text("\n".join(lines))
    return path


async def count(client: Any, bucket: str) -> int:
    total = 0
    async for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        total += len(page.get("Contents", ()))
    return total


async def measure(svc: Service, objects: int, size: int, repeat: int) -> dict[str, Any]:
    source = "bench-src"
    config = rclone_config(svc)
    made: list[tuple[Any, str]] = []  # every destination, checked complete after the runs
    loop = asyncio.get_running_loop()

    async def fresh(client: Any, kind: str) -> str:
        name = f"dst-{kind}-{next(_names)}"
        await client.create_bucket(Bucket=name)
        made.append((client, name))
        return name

    async with s3_client(svc) as local, _remote_client(svc.remote or svc) as remote:
        await seed(svc, source, objects, size=size)

        async def job(component: int | None = None) -> None:
            dst = await fresh(local if component is None else remote, "job")
            params: dict[str, Any] = {"destinationBucket": dst, "replicationFilter": "ALL"}
            if component is not None:
                params["destinationComponent"] = component
            _, done = await run_job(svc, "BATCH_REPLICATE", source, **params)
            assert done["jobState"] == "COMPLETE", done
            assert done["jobStats"]["processed"] == objects, done

        def s5cmd() -> None:
            dst = asyncio.run_coroutine_threadsafe(fresh(local, "s5cmd"), loop).result()
            subprocess.run([tool("s5cmd"), "--endpoint-url", svc.endpoint, "--numworkers", "64",
                            "cp", f"s3://{source}/*", f"s3://{dst}/"],
                           env=_env(svc), check=True, capture_output=True)  # fmt: skip

        def rclone(target: str) -> None:
            client = local if target == "src" else remote
            dst = asyncio.run_coroutine_threadsafe(fresh(client, "rclone"), loop).result()
            subprocess.run([tool("rclone"), "--config", str(config), "copy", "--transfers", "64",
                            "--checkers", "64", f"src:{source}", f"{target}:{dst}"],
                           check=True, capture_output=True)  # fmt: skip

        def threaded(call: Any, *args: Any) -> Any:
            return lambda: asyncio.to_thread(call, *args)

        runs: dict[str, Any] = {
            "bucketjobs BATCH_REPLICATE": job,
            "s5cmd cp --numworkers 64": threaded(s5cmd),
            "rclone copy --transfers 64": threaded(rclone, "src"),
        }
        if svc.remote is not None:
            component = await register(svc, svc.remote)
            runs["bucketjobs → other endpoint"] = lambda: job(component)
            runs["rclone → other endpoint"] = threaded(rclone, "dst")
        await asyncio.sleep(5)  # let the store settle after seeding
        # Rounds of every tool in turn, so a slow spell of the machine hits them all alike.
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(repeat):
            for name, run in runs.items():
                before = cpu_seconds()
                times[name].append((await timed(run, 1))[0])
                print(f"  {name}: {times[name][-1]:.2f} s, CPU s:"
                      f" {cpu_used(before, cpu_seconds())}", flush=True)  # fmt: skip
        rows = {name: statistics.median(values) for name, values in times.items()}
        for client, dst in made:
            assert await count(client, dst) == objects, f"{dst} is incomplete"
    return {"objects": objects, "size": size, "rows": rows}


def _remote_client(remote: Remote | Service) -> Any:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    return get_session().create_client(
        "s3", endpoint_url=remote.endpoint, region_name="us-east-1",
        aws_access_key_id=remote.access_key, aws_secret_access_key=remote.secret_key,
        config=AioConfig(max_pool_connections=64, s3={"addressing_style": "path"}),
    )  # fmt: skip


async def register(svc: Service, remote: Remote) -> int:
    api: Mapi = svc.client()
    try:
        config = {"label": "bench-remote", **endpoint_location(remote.endpoint),
                  "accessKey": remote.access_key, "secretKey": remote.secret_key}  # fmt: skip
        body = {"storageType": "GENERIC_S3", "storageComponentConfig": config}
        created = await api.ok("/storage_component/create", body)
    finally:
        await api.close()
    return int(created["id"])


def report(result: dict[str, Any]) -> None:
    rows = result["rows"]
    print(f"\n{result['objects']:,} objects of {result['size']:,} bytes (median of the runs)")
    print(f"  {'what':32} {'seconds':>8} {'objects/s':>10} {'its time / job time':>20}")
    same = rows["bucketjobs BATCH_REPLICATE"]
    for name, secs in rows.items():
        base = rows.get("bucketjobs → other endpoint", same) if "endpoint" in name else same
        print(f"  {name:32} {secs:8.2f} {result['objects'] / secs:10,.0f} {secs / base:19.2f}x")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--no-remote", action="store_true", help="skip the cross-endpoint runs")
    args = parser.parse_args()
    with service(workers=args.workers, remote=not args.no_remote) as svc:
        result = await measure(svc, args.objects, args.size, args.repeat)
    report(result)
    print("bench ok")


if __name__ == "__main__":
    asyncio.run(main())
