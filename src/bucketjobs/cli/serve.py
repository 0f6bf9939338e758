"""`bucketjobs serve`: API + worker, on embedded PostgreSQL and SeaweedFS unless told otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from bucketjobs.api.app import create_app
from bucketjobs.api.connections import ConnectionLimits, guarded_protocol
from bucketjobs.auth.users import ensure_admin
from bucketjobs.cli.data_dir import exclusive, prepare
from bucketjobs.db.embedded import EmbeddedPostgres
from bucketjobs.db.migrate import upgrade
from bucketjobs.db.session import create_engine
from bucketjobs.storage.components import endpoint_config, set_primary
from bucketjobs.storage.embedded import EmbeddedSeaweed, free_port
from bucketjobs.storage.secrets import serve_fernet


@dataclass
class ServeOptions:
    data_dir: Path
    host: str
    port: int
    database_url: str | None
    s3_endpoint: str | None
    s3_access_key: str | None
    s3_secret_key: str | None
    s3_region: str
    tls_cert: Path | None
    tls_key: Path | None
    no_worker: bool
    worker_concurrency: int
    public_url: str | None = None
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)


async def _bootstrap(url: str, data_dir: Path, endpoint: str, access: str, secret: str,
                     region: str, label: str) -> str | None:  # fmt: skip
    db = create_engine(url, pool_size=2)
    try:
        async with db.begin() as conn:
            fernet = await serve_fernet(conn, data_dir)
            config = endpoint_config(endpoint, region, label)
            await set_primary(conn, fernet, "GENERIC_S3", config, access, secret)
            return await ensure_admin(conn, os.environ.get("BUCKETJOBS_ADMIN_PASSWORD"))
    finally:
        await db.dispose()


def _stable_port(path: Path) -> int:
    """The embedded store keeps its port across restarts so its component stays the same."""
    if path.exists():
        return int(path.read_text())
    port = free_port()
    path.write_text(str(port))
    return port


class _AnnouncingServer(uvicorn.Server):
    """Prints the ready lines once the API's port is bound (a script that waits for them
    may connect at once), and not at all when binding failed."""

    def __init__(self, config: uvicorn.Config, lines: list[str]) -> None:
        super().__init__(config)
        self.lines = lines

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            print("\n".join(self.lines), flush=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(opts: ServeOptions) -> None:
    """Raises DataDirBusy, before touching anything, when another serve runs embedded parts
    in the data dir. API processes on an external database and store start nothing there:
    any number of them share its keys."""
    data_dir = prepare(opts.data_dir)
    embedded = not (opts.database_url and opts.s3_endpoint)
    with exclusive(data_dir) if embedded else contextlib.nullcontext():
        _serve(opts, data_dir)


def _serve(opts: ServeOptions, data_dir: Path) -> None:
    postgres: EmbeddedPostgres | None = None
    seaweed: EmbeddedSeaweed | None = None
    worker: subprocess.Popen[bytes] | None = None
    # SIGTERM before uvicorn takes over must still stop what we started.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        url = opts.database_url
        if not url:
            postgres = EmbeddedPostgres(data_dir / "postgres")
            url = postgres.start(adopt=True)  # under the data dir's lock: ours
        upgrade(url)
        if opts.s3_endpoint:
            endpoint, region, label = opts.s3_endpoint, opts.s3_region, "primary"
            access, secret = opts.s3_access_key or "", opts.s3_secret_key or ""
        else:
            root = data_dir / "seaweedfs"
            root.mkdir(exist_ok=True)
            seaweed = EmbeddedSeaweed(root, _stable_port(root / "s3-port"))
            creds = seaweed.start()
            endpoint, region, label = seaweed.endpoint, "us-east-1", "embedded SeaweedFS"
            access, secret = creds.access_key, creds.secret_key
        generated = asyncio.run(_bootstrap(url, data_dir, endpoint, access, secret, region, label))

        scheme = "https" if opts.tls_cert else "http"
        ready = [f"bucketjobs API:  {scheme}://{opts.host}:{opts.port}/mapi/v1",
                 f"S3 endpoint:     {endpoint}"]  # fmt: skip
        if seaweed is not None:
            ready.append(f"S3 credentials:  {seaweed.credentials_path}")
        if generated:
            ready.append(f"admin password:  {generated}  (shown once; set"
                         " BUCKETJOBS_ADMIN_PASSWORD to choose it)")  # fmt: skip
        if not opts.no_worker:
            # The URL (with the database password) goes by environment, never argv (`ps`).
            worker = subprocess.Popen([
                sys.executable, "-m", "bucketjobs.cli.main", "worker",
                "--data-dir", str(data_dir), "--concurrency", str(opts.worker_concurrency),
            ], env={**os.environ, "BUCKETJOBS_DATABASE_URL": url})  # fmt: skip
        app = create_app(
            url, data_dir, public_url=opts.public_url, secure_cookies=bool(opts.tls_cert)
        )
        config = uvicorn.Config(
            app,
            host=opts.host,
            port=opts.port,
            ssl_certfile=str(opts.tls_cert) if opts.tls_cert else None,
            ssl_keyfile=str(opts.tls_key) if opts.tls_key else None,
            log_level="warning",
            log_config=None,  # uvicorn's lines go through ours (bucketjobs/logs.py)
            access_log=False,
            http=guarded_protocol(opts.limits),
            # Client addresses are the peers': a local account must not pick its address
            # (throttling and connection caps key on it) with X-Forwarded-For.
            proxy_headers=False,
        )
        _AnnouncingServer(config, ready).run()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if worker is not None and worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        if seaweed is not None:
            seaweed.stop()
        if postgres is not None:
            postgres.stop()
