"""The data directory: private to its owner, and served by one `serve` at a time.

A `serve` that runs embedded parts (PostgreSQL, SeaweedFS) holds an exclusive lock on
`<data dir>/serve.lock` (with its pid inside) for its whole life. A second such `serve` on
the same directory refuses before touching anything in it, naming the running one's pid.
Admin commands use the database of a running server as it is; with none running they hold
the lock while they start the embedded database, and stop it when done — nobody ever stops
what they did not start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = "serve.lock"


class DataDirBusy(RuntimeError):
    def __init__(self, data_dir: Path, pid: str) -> None:
        super().__init__(
            f"{data_dir} is in use by bucketjobs serve (pid {pid or 'unknown'}); stop it first"
            " or give another --data-dir"
        )
        self.pid = pid


def prepare(data_dir: Path) -> Path:
    """The resolved data directory, created if needed, mode 0700 (its contents are keys,
    credentials, the database and the stored objects)."""
    path = data_dir.resolve()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


@contextlib.contextmanager
def exclusive(data_dir: Path) -> Iterator[None]:
    """Hold the data directory's lock, or raise DataDirBusy naming who holds it."""
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
            raise DataDirBusy(data_dir, pid) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def held(data_dir: Path) -> bool:
    """Whether a running `serve` holds the data directory."""
    try:
        with exclusive(data_dir):
            return False
    except DataDirBusy:
        return True
