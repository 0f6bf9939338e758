"""A real client's latency while the API is attacked (issue 10 §2).

For each flood, run in its own process from other loopback addresses (127.0.0.2+), a real
client on 127.0.0.1 does what clients in the field do before every call — log in, fetch a
CSRF pair, read a job's status — and the bench prints that client's login and status latency
(p50 / p99), how many of its correct logins were refused, and the API's peak memory.

Floods:
  none          the baseline
  fresh-names   wrong logins, a new user name each time (no throttle applies; argon2 work)
  guess-admin   wrong passwords for the real user's own name, from elsewhere
  slow-headers  thousands of connections sending half a request line and stopping
  huge-bodies   unauthenticated 1 GiB chunked POSTs to the token endpoint
Goal: p99 under 1 s for the real client in every row.
Usage:  python bench/abuse.py --seconds 10 --slow 3000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import socket
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ADMIN_PASSWORD, RssSampler, service

from tests.support.mapi import REALM_TOKEN

FLOODS = ("none", "fresh-names", "guess-admin", "slow-headers", "huge-bodies")


# -- attackers (each in a process of its own) ----------------------------------------------


async def _wrong_logins(url: str, seconds: float, fresh: bool, lanes: int) -> None:
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(base_url=url, transport=transport, timeout=30) as http:
        deadline = time.monotonic() + seconds
        counter = iter(range(10**9))

        async def lane() -> None:
            while time.monotonic() < deadline:
                name = f"nobody-{next(counter)}" if fresh else "admin"
                with contextlib.suppress(httpx.HTTPError):
                    await http.post(REALM_TOKEN, data={
                        "grant_type": "password", "client_id": "admin-cli",
                        "username": name, "password": "wrong"})  # fmt: skip

        await asyncio.gather(*(lane() for _ in range(lanes)))


def _slow_headers(url: str, seconds: float, count: int) -> None:
    port = int(url.rsplit(":", 1)[1])
    socks: list[socket.socket] = []
    deadline = time.monotonic() + seconds
    addresses = [f"127.0.0.{i}" for i in range(3, 3 + max(1, count // 1000 + 1))]
    while time.monotonic() < deadline:
        socks = [s for s in socks if s.fileno() != -1]
        while len(socks) < count and time.monotonic() < deadline:
            source = addresses[len(socks) % len(addresses)]
            try:
                sock = socket.create_connection(("127.0.0.1", port), 2, (source, 0))
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            except OSError:
                break
            socks.append(sock)
        time.sleep(0.5)
        for sock in socks:  # drop the ones the server closed, to reopen them
            sock.setblocking(False)
            try:
                if sock.recv(1) == b"":
                    sock.close()
            except BlockingIOError:
                pass
            except OSError:
                sock.close()
    for sock in socks:
        sock.close()


def _huge_bodies(url: str, seconds: float, lanes: int) -> None:
    port = int(url.rsplit(":", 1)[1])
    chunk = b"%x\r\n%s\r\n" % (1 << 20, b"a" * (1 << 20))
    deadline = time.monotonic() + seconds

    def lane() -> None:
        while time.monotonic() < deadline:
            try:
                sock = socket.create_connection(("127.0.0.1", port), 5, ("127.0.0.5", 0))
                sock.sendall(f"POST {REALM_TOKEN} HTTP/1.1\r\nHost: x\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n".encode())  # fmt: skip
                for _ in range(1024):  # 1 GiB
                    sock.sendall(chunk)
            except OSError:
                pass
            finally:
                sock.close()

    import threading

    threads = [threading.Thread(target=lane) for _ in range(lanes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _attack(kind: str, url: str, seconds: float, slow: int) -> None:
    if kind == "fresh-names":
        asyncio.run(_wrong_logins(url, seconds, True, 24))
    elif kind == "guess-admin":
        asyncio.run(_wrong_logins(url, seconds, False, 24))
    elif kind == "slow-headers":
        _slow_headers(url, seconds, slow)
    elif kind == "huge-bodies":
        _huge_bodies(url, seconds, 4)


# -- the real client -----------------------------------------------------------------------


async def _real_client(
    url: str, seconds: float, job_id: int
) -> tuple[list[float], list[float], int]:
    logins, statuses, refused = [], [], 0
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            token = await http.post(REALM_TOKEN, data={
                "grant_type": "password", "client_id": "admin-cli",
                "username": "admin", "password": ADMIN_PASSWORD})  # fmt: skip
            logins.append(time.perf_counter() - started)
            if token.status_code != 200:
                refused += 1
                await asyncio.sleep(0.1)
                continue
            started = time.perf_counter()
            csrf = await http.get("/mapi/v1/csrf")
            status = await http.post(
                "/mapi/v1/jobs/status",
                json={"jobId": {"id": job_id}},
                headers={"Authorization": f"Bearer {token.json()['access_token']}",
                         "X-XSRF-TOKEN": csrf.cookies["XSRF-TOKEN"]},
            )  # fmt: skip
            assert status.status_code == 200, status.text
            statuses.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)
    return logins, statuses, refused


def _pct(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.0f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per flood")
    parser.add_argument("--slow", type=int, default=3000, help="slow-header connections")
    parser.add_argument("--floods", default=",".join(FLOODS))
    args = parser.parse_args()
    floods = [f for f in args.floods.split(",") if f]
    with service(workers=0) as svc:
        api_pid = next(p.pid for p in svc.processes)
        mapi = svc.client()
        async with svc.s3() as s3:
            await s3.create_bucket(Bucket="abuse")
        job_id = (await mapi.create("METRIC_RECONCILIATION", "abuse"))["jobId"]["id"]
        await mapi.close()
        print(f"{'flood':<14} {'login p50/p99 ms':>17} {'status p50/p99 ms':>18} "
              f"{'logins refused':>14} {'API peak MiB':>12}")  # fmt: skip
        worst = 0.0
        for kind in floods:
            attacker = multiprocessing.Process(
                target=_attack, args=(kind, svc.base_url, args.seconds + 1, args.slow)
            )
            attacker.start()
            await asyncio.sleep(1.0 if kind != "none" else 0)  # the flood is under way
            with RssSampler({"api": api_pid}) as rss:
                logins, statuses, refused = await _real_client(svc.base_url, args.seconds, job_id)
            attacker.join(60)
            if attacker.is_alive():
                attacker.kill()
            worst = max(worst, *(sorted(v)[int(0.99 * len(v))] for v in (logins, statuses) if v))
            print(f"{kind:<14} {_pct(logins, .5):>8}/{_pct(logins, .99):<8} "
                  f"{_pct(statuses, .5):>9}/{_pct(statuses, .99):<8} "
                  f"{refused:>14} {rss.peak['api'] / 2**20:>12.0f}", flush=True)  # fmt: skip
            await asyncio.sleep(2)  # let the server settle (closed sockets, throttles)
        print(f"worst real-client p99: {worst * 1000:.0f} ms (goal < 1000 ms)")
    print("bench ok")


if __name__ == "__main__":
    asyncio.run(main())
