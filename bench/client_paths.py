"""Client CPU per CopyObject over each client path, against one local SeaweedFS.

The same loop (--lanes copies in flight, --objects 1 KiB objects) runs over aiobotocore,
aiohttp with our SigV4 signer, our lean HTTP/1.1 pool (what the product uses) and obstore,
in interleaved rounds; each prints wall seconds and CPU milliseconds per copy of this
process (the client) and of SeaweedFS. Usage:  python bench/client_paths.py --objects 5000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import obstore
import psutil
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from obstore.store import S3Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import remove_unless_kept

from bucketjobs.storage.components import Component, endpoint_location
from bucketjobs.storage.copy import copy_source
from bucketjobs.storage.embedded import EmbeddedSeaweed
from bucketjobs.storage.http import S3Http, encode_key
from bucketjobs.storage.sigv4 import SigV4Signer

Copy = Callable[[str, str], Awaitable[None]]


def _cpu(pid: int) -> float:
    process = psutil.Process(pid)
    times = [process.cpu_times(), *(c.cpu_times() for c in process.children(recursive=True))]
    return sum(t.user + t.system for t in times)


async def _loop(copy: Copy, keys: list[str], lanes: int, tag: str) -> None:
    pending = iter(keys)

    async def lane() -> None:
        for key in pending:
            await copy(key, f"{tag}/{key}")

    await asyncio.gather(*(lane() for _ in range(lanes)))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--lanes", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bucketjobs-bench-"))
    seaweed = EmbeddedSeaweed(root / "seaweedfs")
    creds = seaweed.start()
    assert seaweed.process is not None
    component = Component(0, "GENERIC_S3", endpoint_location(seaweed.endpoint),
                          creds.access_key, creds.secret_key)  # fmt: skip
    http = S3Http(component, args.lanes)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.lanes))
    boto = get_session().create_client(
        "s3", endpoint_url=seaweed.endpoint, region_name="us-east-1",
        aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key,
        config=AioConfig(max_pool_connections=args.lanes, s3={"addressing_style": "path"}),
    )  # fmt: skip
    ob = S3Store("src", endpoint=seaweed.endpoint, access_key_id=creds.access_key,
                 secret_access_key=creds.secret_key, region="us-east-1",
                 client_options={"allow_http": True})  # fmt: skip
    signer = SigV4Signer(creds.access_key, creds.secret_key, "us-east-1")
    host = seaweed.endpoint.split("://", 1)[1]
    try:
        client = await boto.__aenter__()
        keys = [f"k/{i:06d}" for i in range(args.objects)]
        await http.request("PUT", "src")
        await _loop(lambda k, _: _put(http, k), keys, 64, "seed")

        async def lean(src: str, dst: str) -> None:  # the product's path (storage/http.py)
            await http.request(
                "PUT", "src", dst, headers={"x-amz-copy-source": copy_source("src", src)}
            )

        async def with_aiohttp(src: str, dst: str) -> None:
            path = "/src/" + encode_key(dst)
            headers = signer.sign(
                "PUT", host, path, "", {"x-amz-copy-source": copy_source("src", src)}
            )
            async with session.put(seaweed.endpoint + path, headers=headers) as response:
                body = await response.read()
                assert response.status == 200 and b"<Error>" not in body, body[:300]

        async def with_boto(src: str, dst: str) -> None:
            await client.copy_object(
                Bucket="src", Key=dst, CopySource={"Bucket": "src", "Key": src}
            )

        async def with_obstore(src: str, dst: str) -> None:
            await obstore.copy_async(ob, src, dst)

        paths: dict[str, Copy] = {
            "lean HTTP/1.1 pool + own SigV4 (product)": lean,
            "aiohttp + own SigV4": with_aiohttp,
            "obstore copy_async": with_obstore,
            "aiobotocore copy_object": with_boto,
        }
        rows: dict[str, list[tuple[float, float, float]]] = {name: [] for name in paths}
        pid = seaweed.process.pid
        for round_ in range(args.repeat):
            for n, (name, copy) in enumerate(paths.items()):
                store, client_cpu, started = _cpu(pid), time.process_time(), time.perf_counter()
                await _loop(copy, keys, args.lanes, f"r{round_}-{n}")
                wall = time.perf_counter() - started
                per_copy = 1000 / args.objects
                client_ms = (time.process_time() - client_cpu) * per_copy
                rows[name].append((wall, client_ms, (_cpu(pid) - store) * per_copy))
        print(f"{args.objects:,} CopyObject of 1 KiB, {args.lanes} in flight, median of"
              f" {args.repeat} interleaved rounds")  # fmt: skip
        print(f"  {'client path':42} {'wall s':>7} {'client ms/copy':>15} {'store ms/copy':>14}")
        for name, runs in rows.items():
            wall, client_ms, store_ms = (statistics.median(r[i] for r in runs) for i in range(3))
            print(f"  {name:42} {wall:7.2f} {client_ms:15.3f} {store_ms:14.3f}")
        print("bench ok")
    finally:
        await boto.__aexit__(None, None, None)
        await session.close()
        await http.close()
        seaweed.stop()
        remove_unless_kept(root)


async def _put(http: S3Http, key: str) -> None:
    await http.request("PUT", "src", key, data=b"x" * 1024)


if __name__ == "__main__":
    asyncio.run(main())
