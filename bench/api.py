"""The control plane under concurrent clients (issue 11 §2).

Closed loop: N clients (1, 10, 100, 500), each sending its next request as soon as the last
one answered, for --seconds each, on `jobs/status`, `jobs/list` and the field client's
whole sequence per call (token, csrf, serial_number, status), while a BATCH_REPLICATE job
runs. Beside it, in the same run, a bare FastAPI app on the same server stack (uvicorn,
httptools, SQLAlchemy + psycopg pool) doing one primary-key SELECT of the same job row per
request: the floor this stack reaches here. Prints requests/s and p50/p99 per row.
Usage:  python bench/api.py --clients 1,10,100,500 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ADMIN_PASSWORD, seed, service

from bucketjobs.client import REALM_TOKEN
from bucketjobs.storage.embedded import _free_port

BARE_APP = textwrap.dedent("""
    import os
    from fastapi import FastAPI
    from sqlalchemy import text
    from bucketjobs.db.session import create_engine

    db = create_engine(os.environ["BENCH_DATABASE_URL"])
    app = FastAPI()

    @app.post("/status")
    async def status(body: dict) -> dict:
        async with db.connect() as conn:
            row = (await conn.execute(text("SELECT id, state, processed FROM jobs WHERE id = :i"),
                                      {"i": body["id"]})).first()
        return {"id": row.id, "state": row.state, "processed": row.processed}
""")

Call = Callable[[aiohttp.ClientSession], Awaitable[None]]
failed: list[int] = []  # calls that ended in a connection error, per row


async def closed_loop(
    url: str, clients: int, seconds: float, call: Call
) -> tuple[float, list[float]]:
    """aiohttp drives the load: httpx's pool falls to ~70 req/s at 100 connections on this
    machine whatever the server, which would measure the client, not us."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as http:
        deadline = time.monotonic() + seconds

        async def one() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    await call(http)
                except aiohttp.ClientError:
                    failed.append(1)  # a connection the server closed: counted, not timed
                    continue
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="1,10,100,500")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--objects", type=int, default=20000, help="in the running job's bucket")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    with service(workers=1) as svc:
        await seed(svc, "api-source", args.objects, size=64)
        async with svc.s3() as s3:
            await s3.create_bucket(Bucket="api-dest")
        admin = svc.client()
        job = await admin.create("BATCH_REPLICATE", "api-source", destinationBucket="api-dest",
                                 rateLimit=max(1, args.objects // 120))  # fmt: skip
        job_id = job["jobId"]["id"]
        token = await admin.login()
        csrf = await admin.csrf_headers()
        cookies = dict(admin.http.cookies)
        auth = {"Authorization": f"Bearer {token}", **csrf}

        port = _free_port()
        bare = subprocess.Popen(
            [sys.executable, "-c", "import uvicorn, sys; sys.path.insert(0, '.');"
             f" import bare_app; uvicorn.run(bare_app.app, port={port}, log_level='warning',"
             " access_log=False, http='httptools')"],
            cwd=svc.root, env={**os.environ, "BENCH_DATABASE_URL": svc.database_url},
        )  # fmt: skip
        (svc.root / "bare_app.py").write_text(BARE_APP)
        bare_url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.post(f"{bare_url}/status", json={"id": job_id}, timeout=2)
                break
            except httpx.HTTPError:
                await asyncio.sleep(0.1)

        cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        headers = {**auth, "Cookie": cookie}

        async def post(http: aiohttp.ClientSession, path: str, body: object,
                       extra: dict[str, str]) -> dict[str, Any]:  # fmt: skip
            async with http.post(path, json=body, headers=extra) as r:
                assert r.status == 200, await r.text()
                answer: dict[str, Any] = await r.json(content_type=None)
                return answer

        async def status(http: aiohttp.ClientSession) -> None:
            await post(http, "/mapi/v1/jobs/status", {"jobId": {"id": job_id}}, headers)

        async def listing(http: aiohttp.ClientSession) -> None:
            await post(http, "/mapi/v1/jobs/list", {"pageSize": 20}, headers)

        refused: list[int] = []

        async def field(http: aiohttp.ClientSession) -> None:
            form = {"grant_type": "password", "client_id": "admin-cli", "username": "admin",
                    "password": ADMIN_PASSWORD}  # fmt: skip
            async with http.post(REALM_TOKEN, data=form) as t:
                if t.status == 429:  # the password gate's queue for one address is full
                    refused.append(1)
                    await asyncio.sleep(float(t.headers.get("Retry-After", "1")))
                    return
                assert t.status == 200, await t.text()
                access = (await t.json())["access_token"]
            async with http.get("/mapi/v1/csrf") as c:
                jar = {k: m.value for k, m in c.cookies.items()}
            h = {"Authorization": f"Bearer {access}", "X-XSRF-TOKEN": jar["XSRF-TOKEN"],
                 "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}  # fmt: skip
            await post(http, "/mapi/v1/serial_number/get", {}, h)
            await post(http, "/mapi/v1/jobs/status", {"jobId": {"id": job_id}}, h)

        async def baseline(http: aiohttp.ClientSession) -> None:
            await post(http, "/status", {"id": job_id}, {})

        rows = [("bare FastAPI + 1 SELECT", bare_url, baseline),
                ("jobs/status", svc.base_url, status),
                ("jobs/list (20)", svc.base_url, listing),
                ("field sequence (4 calls)", svc.base_url, field)]  # fmt: skip
        print(
            f"{'what':<26} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} refused  failed"
        )
        try:
            for name, url, call in rows:
                for clients in counts:
                    refused.clear()
                    failed.clear()
                    rate, lat = await closed_loop(url, clients, args.seconds, call)
                    tail = f"{len(refused):>7} {len(failed):>7}"
                    print(f"{name:<26} {clients:>7} {rate:>8.0f} {_pct(lat, .5):>8.1f}"
                          f" {_pct(lat, .99):>8.1f} {tail}", flush=True)  # fmt: skip
        finally:
            bare.terminate()
            bare.wait(10)
        state = (await admin.status(job_id))["jobState"]
        print(f"the BATCH_REPLICATE job was {state} at the end")
        await admin.close()
    print("bench ok")


if __name__ == "__main__":
    asyncio.run(main())
