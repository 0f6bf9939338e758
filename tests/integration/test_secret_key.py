"""One credential key per installation: a process without it, or with another, stops at start
with one line, and none makes a key of its own (only `serve` does, for a new installation)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bucketjobs.storage.secrets import SecretKeyError, check_fernet, load_fernet
from tests.support.services import free_port

WRONG_KEY = "not the one this installation's credentials are encrypted with"


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "BUCKETJOBS_SECRET_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "bucketjobs.cli.main", *args],
        env={**base, **env}, cwd=cwd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _one_line(out: subprocess.CompletedProcess[str], expected: str) -> None:
    assert out.returncode != 0
    assert expected in out.stderr, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_a_worker_without_the_key_stops_and_makes_none(stack, tmp_path):
    host = tmp_path / "new-host"
    out = _run(["worker", "--database-url", stack.database_url, "--data-dir", str(host)], {},
               tmp_path)  # fmt: skip
    _one_line(out, "no secret key")
    assert "BUCKETJOBS_SECRET_KEY" in out.stderr
    assert not (host / "secret.key").exists()  # it used to make one, and fail every job


def test_a_worker_with_another_key_stops_naming_it(stack, tmp_path):
    args = ["worker", "--database-url", stack.database_url, "--data-dir", str(tmp_path)]
    out = _run(args, {"BUCKETJOBS_SECRET_KEY": Fernet.generate_key().decode()}, tmp_path)
    _one_line(out, WRONG_KEY)
    (tmp_path / "secret.key").write_bytes(Fernet.generate_key())
    out = _run(args, {}, tmp_path)
    _one_line(out, WRONG_KEY)
    assert str(tmp_path / "secret.key") in out.stderr


def test_a_key_that_is_not_a_fernet_key_is_named(stack, tmp_path):
    args = ["worker", "--database-url", stack.database_url, "--data-dir", str(tmp_path)]
    out = _run(args, {"BUCKETJOBS_SECRET_KEY": "hunter2"}, tmp_path)
    _one_line(out, "is not a Fernet key")
    assert "hunter2" not in out.stderr + out.stdout  # the value itself is never echoed


def test_admin_commands_check_the_key_too(stack, tmp_path):
    args = ["targets", "list", "--database-url", stack.database_url, "--data-dir", str(tmp_path)]
    _one_line(_run(args, {}, tmp_path), "no secret key")
    out = _run(args, {"BUCKETJOBS_SECRET_KEY": Fernet.generate_key().decode()}, tmp_path)
    _one_line(out, WRONG_KEY)
    good = _run([*args[:-2], "--data-dir", str(stack.data_dir)], {}, tmp_path)
    assert good.returncode == 0, good.stderr


async def test_an_installation_from_before_the_check_proves_the_key_on_a_credential(
    stack, db: AsyncEngine
):
    """Upgraded installations have credentials but no check token yet: a wrong key must not
    become the reference; the right one records it."""
    right = load_fernet(stack.data_dir)
    async with db.connect() as conn:
        trans = await conn.begin()
        try:
            await conn.execute(text("DELETE FROM installation WHERE key = 'secret_key_check'"))
            with pytest.raises(SecretKeyError, match="not the one"):
                await check_fernet(conn, Fernet(Fernet.generate_key()), stack.data_dir)
            stored = "SELECT count(*) FROM installation WHERE key = 'secret_key_check'"
            assert await conn.scalar(text(stored)) == 0
            await check_fernet(conn, right, stack.data_dir)
            assert await conn.scalar(text(stored)) == 1
        finally:
            await trans.rollback()


def test_serve_joining_an_installation_without_its_key_stops_and_makes_none(stack, tmp_path):
    """Only a new installation gets a new key: a second API host started without the key
    used to make one and re-encrypt the primary component with it, breaking every other
    host."""
    host = tmp_path / "api-2"
    store = stack.store
    out = _run(["serve", "--no-worker", "--port", str(free_port()), "--data-dir", str(host),
                "--database-url", stack.database_url, "--s3-endpoint", store.endpoint,
                "--s3-access-key", store.access_key, "--s3-secret-key", store.secret_key],
               {}, tmp_path)  # fmt: skip
    assert out.returncode != 0
    assert "no secret key" in out.stderr.strip().splitlines()[-1], out.stderr  # after its logs
    assert "Traceback" not in out.stderr
    assert not (host / "secret.key").exists()
