"""The data dir when other local accounts exist (issue 10 §5), checked as `nobody`.

One `serve` on embedded defaults runs inside a 0700 directory (as a home is); the tests then
look at it the way another account of the host would, and start a second `serve` by mistake.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import create_engine, text

from bucketjobs.auth.passwords import verify_password
from bucketjobs.db.embedded import POSTGRES_BIN_PATH, EmbeddedPostgres
from tests.support.services import free_port, wait_http
from tests.support.stack import ADMIN_PASSWORD

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as `nobody`")


def _as_nobody(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "nobody", "--", *cmd],
                          capture_output=True, text=True, timeout=30)  # fmt: skip


def _serve(home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BUCKETJOBS_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bucketjobs.cli.main", "serve", "--port", str(port)],
            cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[Path, int, subprocess.Popen[bytes]]]:
    home = tmp_path_factory.mktemp("home")
    home.chmod(0o700)
    port = free_port()
    proc = _serve(home, port, home.parent / "serve.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=90)
        yield home, port, proc
    finally:
        proc.terminate()
        proc.wait(60)


def _postgres_processes(home: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.info["name"] == "postgres" and proc.cwd().startswith(str(home)):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_no_permission_outside_the_data_dir_changes(served):
    home, _, _ = served
    data = home / "bucketjobs-data"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700, "the home was opened to others"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert _as_nobody("ls", str(data)).returncode != 0


def test_postgres_runs_with_its_own_group_and_needs_a_password(served):
    home, _, _ = served
    processes = _postgres_processes(home)
    assert processes
    for proc in processes:
        assert proc.gids().real != 0 and proc.uids().real != 0
    socket_dir = home / "bucketjobs-data" / "postgres"
    password_file = home / "bucketjobs-data" / "postgres-password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    psql = str(POSTGRES_BIN_PATH / "psql")
    # Another account reaches neither the socket nor, were it reachable, the database.
    denied = _as_nobody(psql, "-h", str(socket_dir), "-U", "postgres", "-c", "select 1")
    assert denied.returncode != 0
    no_password = subprocess.run(
        [psql, "-h", str(socket_dir), "-U", "postgres", "-w", "-c", "select 1"],
        capture_output=True, text=True, timeout=30,
        env={k: v for k, v in os.environ.items() if not k.startswith("PG")},
    )  # fmt: skip
    assert no_password.returncode != 0 and "password" in no_password.stderr


def test_database_url_never_on_a_command_line(served):
    home, _, proc = served
    password = (home / "bucketjobs-data" / "postgres-password").read_text().strip()
    for process in psutil.Process(proc.pid).children(recursive=True):
        assert password not in " ".join(process.cmdline())


def test_a_second_serve_refuses_and_stops_nothing(served, tmp_path):
    home, port, _ = served
    log = tmp_path / "second.log"
    second = _serve(home, free_port(), log)
    assert second.wait(60) == 1
    said = log.read_text()
    assert "in use by bucketjobs serve (pid" in said and "Traceback" not in said
    assert _postgres_processes(home), "the running server's PostgreSQL was stopped"
    token = httpx.post(
        f"http://127.0.0.1:{port}/ui/auth/realms/vsp-object/protocol/openid-connect/token",
        data={"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD,
              "client_id": "admin-cli"},
    )  # fmt: skip
    assert token.status_code == 200, "the first server still reaches its database"


def test_an_admin_command_uses_the_running_database_and_leaves_it_running(served):
    home, _, _ = served
    done = subprocess.run(
        [sys.executable, "-m", "bucketjobs.cli.main", "users", "list"],
        cwd=home, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and "admin" in done.stdout, done.stdout + done.stderr
    assert _postgres_processes(home)


def _admin(cwd: Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bucketjobs.cli.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, **kwargs)  # fmt: skip


def test_an_admin_command_where_there_is_no_installation_fails_and_makes_none(tmp_path):
    """Run from the wrong folder, `users list` must not start a new empty installation (and
    leave its PostgreSQL running): one line naming where it looked and what to pass."""
    done = _admin(tmp_path, "users", "list")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"no bucketjobs installation in {tmp_path / 'bucketjobs-data'}" in done.stderr
    assert "--data-dir" in done.stderr and "--database-url" in done.stderr
    assert list(tmp_path.iterdir()) == []
    assert not _postgres_processes(tmp_path)


def test_an_admin_command_alone_stops_the_database_it_started(tmp_path):
    # An installation whose server is not running.
    data = tmp_path / "bucketjobs-data"
    data.mkdir(mode=0o700)
    postgres = EmbeddedPostgres(data / "postgres")
    postgres.start()
    postgres.stop()
    # No terminal: the password is stdin's first line, or BUCKETJOBS_PASSWORD.
    done = _admin(tmp_path, "users", "add", "solo", "--role", "operator", input="solo-pw\n")
    assert done.returncode == 0, done.stdout + done.stderr
    env = {**os.environ, "BUCKETJOBS_PASSWORD": "envy-pw"}
    done = _admin(tmp_path, "users", "add", "envy", env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    empty = _admin(tmp_path, "users", "add", "nobody-home", input="")
    assert empty.returncode == 1 and "stdin was empty" in empty.stderr, empty.stderr
    bad = _admin(tmp_path, "users", "add", "x", "--role", "root", input="pw-x\n")
    assert bad.returncode == 2 and "administrator" in bad.stderr and "Traceback" not in bad.stderr
    assert not _postgres_processes(tmp_path)

    url = postgres.start()
    try:
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.connect() as conn:
            rows = dict(conn.execute(text("SELECT name, password_hash FROM users")).all())
        engine.dispose()
    finally:
        postgres.stop()
    assert verify_password(rows["solo"], "solo-pw") and verify_password(rows["envy"], "envy-pw")
    assert "nobody-home" not in rows and "x" not in rows


def _weed_ports(home: Path) -> dict[str, int]:
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if proc.info["name"] == "weed" and any(str(home) in part for part in cmd):
            found = {}
            for part in cmd:
                for service in ("master", "volume", "filer"):
                    if part.startswith(f"-{service}.port="):
                        found[service] = int(part.split("=", 1)[1])
            return found
    raise AssertionError("no weed process for this data dir")


def test_the_embedded_stores_internal_ports_need_its_certificate(served):
    """Only the S3 port (with credentials) serves data: master, volume and filer, over HTTP
    and gRPC, refuse a client without the store's certificate — as `nobody` and as root."""
    home, _, _ = served
    ports = _weed_ports(home)
    assert set(ports) == {"master", "volume", "filer"}
    for service, port in ports.items():
        for target in (port, port + 10000):  # HTTP, gRPC
            for scheme in ("http", "https"):
                url = f"{scheme}://127.0.0.1:{target}/dir/status"
                answer = _as_nobody("curl", "-sk", "--max-time", "5", "-w", "\n%{http_code}", url)
                last = answer.stdout.strip().rsplit("\n", 1)[-1]
                assert answer.returncode != 0 or last not in ("200", "204"), (service, url)
                assert "Topology" not in answer.stdout and "Volumes" not in answer.stdout
