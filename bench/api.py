"""The control plane under concurrent clients (issue 11 §2).

Closed loop: N clients (1, 10, 100, 500), each sending its next request as soon as the last
one answered, for --seconds each, on `jobs/status`, `jobs/list` and the field client's
whole sequence per call (token, csrf, serial_number, status), while a BATCH_REPLICATE job
runs. wrk (Debian's package, which scripts/test installs) drives the one-call rows: a C
client on one thread leaves the two cores to the server, where 500 aiohttp connections in
this process took a growing share of them. Open loop: 100 clients each polling
`jobs/status` once a second (p99 goal < 25 ms).
Beside it, in the same run, a bare FastAPI app on the same server stack (uvicorn,
httptools, SQLAlchemy + psycopg pool) doing one primary-key SELECT of the same job row per
request, read the fastest way the product knows (db/session.create_read_engine): the floor this
stack reaches here. Prints requests/s and p50/p99 per row.
Usage:  python bench/api.py --clients 1,10,100,500 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ADMIN_PASSWORD, cpu_seconds, cpu_used, seed, service

from bucketjobs.storage.embedded import free_port
from tests.support.mapi import REALM_TOKEN

WRK = shutil.which("wrk") or "wrk"

BARE_APP = textwrap.dedent("""
    import gc
    import os
    from fastapi import FastAPI
    from sqlalchemy import text
    from bucketjobs.db.session import create_read_engine

    db = create_read_engine(os.environ["BENCH_DATABASE_URL"])
    app = FastAPI()
    gc.freeze()  # as the product's API does after startup

    @app.post("/status")
    async def status(body: dict) -> dict:
        async with db.connect() as conn:
            row = (await conn.execute(text("SELECT id, state, processed FROM jobs WHERE id = :i"),
                                      {"i": body["id"]})).first()
        return {"id": row.id, "state": row.state, "processed": row.processed}
""")

Call = Callable[[aiohttp.ClientSession], Awaitable[None]]


class Refused(Exception):
    """A 429 from the password gate: counted apart, not as an answered call."""


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
                except Refused:
                    continue
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies


def wrk_closed_loop(
    url: str, path: str, body: object, headers: dict[str, str], clients: int, seconds: float
) -> tuple[float, float, float, int]:
    """The closed loop of one POST, driven by wrk: requests/s, p50 and p99 in ms, and the
    answers that were not 2xx or never came (connection errors, timeouts)."""
    script = ["wrk.method = 'POST'", f"wrk.body = {json.dumps(json.dumps(body))}",
              "wrk.headers['Content-Type'] = 'application/json'"]  # fmt: skip
    script += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    lua = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-api-{os.getpid()}.lua"
    lua.write_text("\n".join(script) + "\n")
    try:
        out = subprocess.run(
            [WRK, "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--latency",
             "--timeout", "30s", "-s", str(lua), url + path],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        lua.unlink()

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rate = float(re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M).group(1))  # type: ignore[union-attr]
    bad = sum(
        int(n)
        for n in re.findall(r"(?:Non-2xx or 3xx responses|connect|read|write|timeout):? (\d+)", out)
    )
    return rate, ms("50%"), ms("99%"), bad


async def open_loop(
    url: str, clients: int, seconds: float, interval: float, call: Call
) -> tuple[float, list[float]]:
    """`clients` clients each calling once per `interval`, on their own schedule (a random
    phase, then a fixed period whatever the answers' latency): what a fleet of pollers
    does. Latency is counted from the scheduled time, so a server that falls behind shows."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as http:
        start = time.monotonic()

        async def one(phase: float) -> None:
            due = start + phase
            while due < start + seconds:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                try:
                    await call(http)
                except aiohttp.ClientError:
                    failed.append(1)
                else:
                    latencies.append(time.monotonic() - due)
                due += interval

        await asyncio.gather(*(one(random.uniform(0, interval)) for _ in range(clients)))
    return len(latencies) / seconds, latencies


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="1,10,100,500")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--objects", type=int, default=20000, help="in the running job's bucket")
    parser.add_argument("--rows", default="bare,status,list,field,open",
                        help="which rows to run (comma-separated)")  # fmt: skip
    parser.add_argument(
        "--open-clients",
        type=int,
        default=100,
        help="pollers of jobs/status at one call a second (open loop)",
    )
    parser.add_argument("--open-seconds", type=float, default=10.0)
    args = parser.parse_args()
    wanted = set(args.rows.split(","))
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

        port = free_port()
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

        refused: list[int] = []

        async def field(http: aiohttp.ClientSession) -> None:
            form = {"grant_type": "password", "client_id": "admin-cli", "username": "admin",
                    "password": ADMIN_PASSWORD}  # fmt: skip
            async with http.post(REALM_TOKEN, data=form) as t:
                if t.status == 429:  # the password gate's queue for one address is full
                    refused.append(1)
                    await asyncio.sleep(float(t.headers.get("Retry-After", "1")))
                    raise Refused
                assert t.status == 200, await t.text()
                access = (await t.json())["access_token"]
            async with http.get("/mapi/v1/csrf") as c:
                jar = {k: m.value for k, m in c.cookies.items()}
            h = {"Authorization": f"Bearer {access}", "X-XSRF-TOKEN": jar["XSRF-TOKEN"],
                 "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}  # fmt: skip
            await post(http, "/mapi/v1/serial_number/get", {}, h)
            await post(http, "/mapi/v1/jobs/status", {"jobId": {"id": job_id}}, h)

        # (key, name, server, one call as wrk sends it, or the sequence aiohttp runs)
        status_body = {"jobId": {"id": job_id}}
        rows: list[tuple[str, str, str, tuple[str, object, dict[str, str]] | Call]] = [
            ("bare", "bare FastAPI + 1 SELECT", bare_url, ("/status", {"id": job_id}, {})),
            ("status", "jobs/status", svc.base_url, ("/mapi/v1/jobs/status", status_body, headers)),
            ("list", "jobs/list (20)", svc.base_url,
             ("/mapi/v1/jobs/list", {"pageSize": 20}, headers)),
            ("field", "field sequence (4 calls)", svc.base_url, field),
        ]  # fmt: skip
        rates: dict[tuple[str, int], float] = {}
        print(f"{'what':<26} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
              " refused  failed  server CPU ms/req")  # fmt: skip
        server = {svc.base_url: psutil.Process(svc.processes[0].pid),
                  bare_url: psutil.Process(bare.pid)}  # fmt: skip

        def cpu(url: str) -> float:
            times = server[url].cpu_times()
            return times.user + times.system

        try:
            if "open" in wanted:  # first: the steady state, not the wake of a 500-client storm
                failed.clear()
                n = args.open_clients
                before_open = cpu_seconds()
                rate, lat = await open_loop(svc.base_url, n, args.open_seconds, 1.0, status)
                print(f"{'jobs/status, open loop':<26} {n:>7} {rate:>8.0f} {_pct(lat, .5):>8.1f}"
                      f" {_pct(lat, .99):>8.1f} {0:>7} {len(failed):>7}"
                      f"   ({n} clients, 1 call/s each; max {max(lat) * 1000:.1f} ms)")  # fmt: skip
                print(f"  CPU s during the open loop: {cpu_used(before_open, cpu_seconds())}")
            for key, name, url, load in rows:
                if key not in wanted:
                    continue
                for clients in counts:
                    refused.clear()
                    failed.clear()
                    before = cpu(url)
                    if isinstance(load, tuple):
                        rate, p50, p99, bad = await asyncio.to_thread(
                            wrk_closed_loop, url, *load, clients, args.seconds
                        )
                        failed.extend([1] * bad)
                    else:
                        rate, lat = await closed_loop(url, clients, args.seconds, load)
                        p50, p99 = _pct(lat, 0.5), _pct(lat, 0.99)
                    per_request = (cpu(url) - before) / max(1.0, rate * args.seconds) * 1000
                    rates[key, clients] = rate
                    tail = f"{len(refused):>7} {len(failed):>7} {per_request:>17.2f}"
                    print(f"{name:<26} {clients:>7} {rate:>8.0f} {p50:>8.1f}"
                          f" {p99:>8.1f} {tail}", flush=True)  # fmt: skip
        finally:
            bare.terminate()
            bare.wait(10)
        state = (await admin.status(job_id))["jobState"]
        print(f"the BATCH_REPLICATE job was {state} at the end")
        for clients in counts:
            if ("bare", clients) in rates and ("status", clients) in rates:
                ratio = rates["status", clients] / rates["bare", clients]
                print(f"jobs/status / bare at {clients} clients: {ratio:.2f}x")
        await admin.close()
    print("bench ok")


if __name__ == "__main__":
    asyncio.run(main())
