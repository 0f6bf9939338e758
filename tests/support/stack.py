"""The running service as tests see it: its stores, processes and users."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bucketjobs.client import Mapi
from bucketjobs.storage.components import endpoint_location
from tests.support.services import Process

ADMIN_PASSWORD = "admin-test-password"


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

    def start_worker(self, concurrency: int = 8, *, inline: bool = True) -> Process:
        log = self.data_dir / f"worker-{len(self.workers)}-{time.monotonic_ns()}.log"
        worker = Process(
            ["worker", "--database-url", self.database_url, "--data-dir", str(self.data_dir),
             "--concurrency", str(concurrency), "--inline" if inline else "--no-inline"],
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
