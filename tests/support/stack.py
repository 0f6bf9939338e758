"""The running service as tests see it: its stores, processes and users."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bucketjobs.storage.components import endpoint_location
from tests.support.mapi import Mapi
from tests.support.services import Process, free_port, wait_http

ADMIN_PASSWORD = "admin-test-password"

# Worker options for crash tests: heartbeats every second, and a worker silent for 4 s counts
# as dead, so recovery takes seconds, not the default 20 (they check what is recovered).
QUICK_RECOVERY = ("--stalled-after", "4")


@dataclass
class Store:
    endpoint: str
    access_key: str
    secret_key: str


@dataclass
class Stack:
    """The running service: its URL, database and the processes behind it."""

    base_url: str
    database_url: str
    data_dir: Path
    store: Store
    api: Process
    workers: list[Process] = field(default_factory=list)

    def start_worker(
        self, concurrency: int = 8, *, inline: bool = True, options: tuple[str, ...] = ()
    ) -> Process:
        log = self.data_dir / f"worker-{len(self.workers)}-{time.monotonic_ns()}.log"
        worker = Process(
            ["worker", "--database-url", self.database_url, "--data-dir", str(self.data_dir),
             "--concurrency", str(concurrency), "--inline" if inline else "--no-inline",
             *options],
            {}, log,
        )  # fmt: skip
        self.workers.append(worker)
        return worker

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()

    def add_user(self, name: str, role: str) -> Mapi:
        """Create a user with the `users add` command; a client logged in as them (the
        password is `<name>-pw`)."""
        cmd = ["users", "add", name, "--role", role, "--database-url", self.database_url,
               "--data-dir", str(self.data_dir)]  # fmt: skip
        log = self.data_dir / f"users-add-{name}.log"
        proc = Process(cmd, {"BUCKETJOBS_NEW_PASSWORD": f"{name}-pw"}, log)
        assert proc.proc.wait(60) == 0, proc.log.read_text()
        return Mapi(self.base_url, name, f"{name}-pw")


def component_body(endpoint: str, access_key: str, secret_key: str, label: str) -> dict[str, Any]:
    config = {"label": label, **endpoint_location(endpoint),
              "accessKey": access_key, "secretKey": secret_key}  # fmt: skip
    return {"storageType": "GENERIC_S3", "storageComponentConfig": config}


@contextmanager
def private_api(
    data_dir: Path, store: Store, postgres_url: str, *options: str
) -> Iterator[tuple[str, Process]]:
    """`serve --no-worker` on a database of its own (a new one in the suite's PostgreSQL),
    for tests that change what the suite's stack relies on or need other server options."""
    import psycopg

    name = f"private_{free_port()}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    port = free_port()
    api = Process(
        ["serve", "--no-worker", "--port", str(port), "--data-dir", str(data_dir),
         "--database-url", postgres_url.replace("/postgres?", f"/{name}?"),
         "--s3-endpoint", store.endpoint, "--s3-access-key", store.access_key,
         "--s3-secret-key", store.secret_key, *options],
        {"BUCKETJOBS_ADMIN_PASSWORD": ADMIN_PASSWORD}, data_dir / "api.log",
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=api)
        yield f"http://127.0.0.1:{port}", api
    finally:
        api.stop()
