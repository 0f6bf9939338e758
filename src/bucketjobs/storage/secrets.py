"""Encryption at rest for storage credentials (Fernet; key file in the data dir or env).

One key serves the whole installation: every process that reads or writes credentials
(API, workers, admin commands, on any host) must hold the same one. Only `serve` makes a
key, and only for a new installation (a database with no credentials and no check token
yet); every other process, and `serve` on a host joining an installation, loads one or
stops. Each process then checks its key against a token in the database that only the
installation's key opens, so a host given the wrong key (or a worker that once made its
own) stops at start with one line, instead of failing every job later with a bare
`InvalidToken`.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from bucketjobs.db.installation import get_or_create
from bucketjobs.db.models import installation, storage_components

ENV_KEY = "BUCKETJOBS_SECRET_KEY"
KEY_FILE = "secret.key"
_CHECK = b"bucketjobs installation key"
_CHECK_ROW = "secret_key_check"


class SecretKeyError(RuntimeError):
    """This process has no usable secret key, or not the installation's; says what to do."""


async def serve_fernet(conn: AsyncConnection, data_dir: Path) -> Fernet:
    """`serve`'s key, checked: `BUCKETJOBS_SECRET_KEY` if set, else `secret.key`, made (0600)
    only when the installation is new. A host joining an existing installation without
    the key stops as a worker would, and leaves no key of its own behind."""
    path = data_dir / KEY_FILE
    token, proof = await _proof(conn)
    if not os.environ.get(ENV_KEY) and not path.exists() and proof is None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
    fernet = load_fernet(data_dir)
    await _check(conn, fernet, data_dir, token, proof)
    return fernet


async def _proof(conn: AsyncConnection) -> tuple[str | None, str | None]:
    """The check token, and what proves a key: that token or, in an installation from
    before it, a stored credential (None, None: a new installation)."""
    token = await conn.scalar(select(installation.c.value).where(installation.c.key == _CHECK_ROW))
    if token is not None:
        return token, token
    return None, await conn.scalar(select(storage_components.c.secret_key_enc).limit(1))


def load_fernet(data_dir: Path) -> Fernet:
    """`BUCKETJOBS_SECRET_KEY` if set (workers on other hosts), else `secret.key`; never
    makes one."""
    path = data_dir / KEY_FILE
    if os.environ.get(ENV_KEY):
        raw, source = os.environ[ENV_KEY].encode(), ENV_KEY
    elif path.exists():
        raw, source = path.read_bytes().strip(), str(path)
    else:
        raise SecretKeyError(
            f"no secret key: {path} does not exist and {ENV_KEY} is not set; copy secret.key"
            " from the data dir of the host where `bucketjobs serve` first ran (or set"
            f" {ENV_KEY} to its contents)"
        )
    try:
        return Fernet(raw)
    except ValueError:
        raise SecretKeyError(
            f"the secret key in {source} is not a Fernet key (32 url-safe base64-encoded bytes)"
        ) from None


async def check_fernet(conn: AsyncConnection, fernet: Fernet, data_dir: Path) -> None:
    """Raise SecretKeyError unless `fernet` is the installation's key. The first process
    records a token its key opens; an installation from before the token proves its key on
    a stored credential first (a wrong key must not become the reference)."""
    await _check(conn, fernet, data_dir, *await _proof(conn))


async def _check(
    conn: AsyncConnection, fernet: Fernet, data_dir: Path, token: str | None, proof: str | None
) -> None:
    if proof is not None and not _opens(fernet, proof):
        raise _mismatch(data_dir)
    if token is None:  # the first check of this installation records the token
        token = await get_or_create(conn, _CHECK_ROW, lambda: fernet.encrypt(_CHECK).decode())
        if not _opens(fernet, token):  # another process recorded its own key first
            raise _mismatch(data_dir)


def _opens(fernet: Fernet, token: str) -> bool:
    try:
        fernet.decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def _mismatch(data_dir: Path) -> SecretKeyError:
    source = ENV_KEY if os.environ.get(ENV_KEY) else str(data_dir / KEY_FILE)
    return SecretKeyError(
        f"the secret key in {source} is not the one this installation's credentials are"
        " encrypted with; use the secret.key of the host where `bucketjobs serve` first ran"
    )
