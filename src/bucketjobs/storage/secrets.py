"""Encryption at rest for storage credentials (Fernet; key file in the data dir or env)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet

ENV_KEY = "BUCKETJOBS_SECRET_KEY"


def load_or_create_fernet(data_dir: Path) -> Fernet:
    """`BUCKETJOBS_SECRET_KEY` if set (workers on other hosts), else `secret.key` (0600)."""
    if os.environ.get(ENV_KEY):
        return Fernet(os.environ[ENV_KEY].encode())
    path = data_dir / "secret.key"
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
    return Fernet(path.read_bytes().strip())
