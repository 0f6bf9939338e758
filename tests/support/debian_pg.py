"""A PostgreSQL server from Debian's `postgresql` package, reached over TCP with a password:
what workers on other hosts use. `scripts/test` installs the package when it is missing."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path


def server_bin() -> Path | None:
    """Newest installed Debian PostgreSQL server binaries, if any."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    return Path(found[-1]).parent if found else None


class DebianPostgres:
    """A private cluster in `root`, run by the `postgres` system user, on 127.0.0.1:`port`."""

    def __init__(self, root: Path, port: int) -> None:
        self.bin = server_bin()
        if self.bin is None:
            raise RuntimeError("Debian's postgresql is not installed (scripts/test installs it)")
        self.root = root
        self.pgdata = root / "data"
        self.port = port
        self.password = secrets.token_urlsafe(16)
        self._user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://bucketjobs:{self.password}@127.0.0.1:{self.port}/bucketjobs"

    def _run(self, *args: str, input_text: str | None = None) -> None:
        subprocess.run([str(self.bin / args[0]), *args[1:]], check=True, capture_output=True,
                       user=self._user, input=input_text, text=True, timeout=120,
                       env={**os.environ, "PGPASSWORD": self.password})  # fmt: skip

    def start(self) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            os.chmod(self.root, 0o700)
        password_file = self.root / "pw"
        password_file.write_text(self.password + "\n")
        if self._user:
            shutil.chown(password_file, self._user)
        self._run("initdb", "-D", str(self.pgdata), "-U", "bucketjobs", "--pwfile", str(password_file),
                  "--auth-host=scram-sha-256", "--auth-local=peer", "--encoding=UTF8", "--locale=C")  # fmt: skip
        self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-t", "60", "-l", str(self.root / "log"),
                  "-o", f"-h 127.0.0.1 -p {self.port} -k {self.root} -c max_connections=200",
                  "start")  # fmt: skip
        self._run(
            "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "bucketjobs", "bucketjobs"
        )
        return self.url

    def stop(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-m", "fast", "stop")
