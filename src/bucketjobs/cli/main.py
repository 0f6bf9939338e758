"""`bucketjobs` commands: serve, worker, users, targets, bindings (on the database), and
login, logout, jobs (through the API)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bucketjobs.api.connections import ConnectionLimits
from bucketjobs.auth.permissions import Role
from bucketjobs.cli.common import (
    CommandError,
    DatabaseUrl,
    DataDir,
    console,
    fail,
    run_in_database,
)
from bucketjobs.cli.data_dir import DataDirBusy
from bucketjobs.cli.jobs import jobs_app, login, logout
from bucketjobs.cli.notifications import bindings_app, targets_app
from bucketjobs.db.embedded import EmbeddedPostgresError
from bucketjobs.storage.embedded import EmbeddedStoreError

app = typer.Typer(help="Bulk jobs over S3 buckets.", no_args_is_help=True)
users_app = typer.Typer(help="Manage users (talks to the database directly).")
app.add_typer(users_app, name="users")
app.add_typer(targets_app, name="targets")
app.add_typer(bindings_app, name="bindings")
app.add_typer(jobs_app, name="jobs")
app.command("login")(login)
app.command("logout")(logout)


@app.command("serve")
def serve_command(
    data_dir: DataDir = Path("./bucketjobs-data"),
    host: Annotated[
        str, typer.Option(envvar="BUCKETJOBS_HOST", help="Address the API listens on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar="BUCKETJOBS_PORT", min=0, max=65535, help="The API's port.")
    ] = 8080,
    database_url: DatabaseUrl = None,
    s3_endpoint: Annotated[
        str | None,
        typer.Option(
            envvar="BUCKETJOBS_S3_ENDPOINT",
            help="An S3 store to use as the primary component (default: embedded SeaweedFS).",
        ),
    ] = None,
    s3_access_key: Annotated[
        str | None,
        typer.Option(envvar="BUCKETJOBS_S3_ACCESS_KEY", help="Access key for --s3-endpoint."),
    ] = None,
    s3_secret_key: Annotated[
        str | None,
        typer.Option(
            envvar="BUCKETJOBS_S3_SECRET_KEY",
            help="Secret key for --s3-endpoint (better by environment than argv).",
        ),
    ] = None,
    s3_region: Annotated[
        str, typer.Option(envvar="BUCKETJOBS_S3_REGION", help="Signing region of --s3-endpoint.")
    ] = "us-east-1",
    tls_cert: Annotated[
        Path | None,
        typer.Option(envvar="BUCKETJOBS_TLS_CERT", help="PEM certificate chain: serve HTTPS."),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(envvar="BUCKETJOBS_TLS_KEY", help="PEM private key of --tls-cert."),
    ] = None,
    no_worker: Annotated[
        bool,
        typer.Option(
            "--no-worker",
            envvar="BUCKETJOBS_NO_WORKER",
            help="Run the API alone (workers run as `bucketjobs worker`, here or elsewhere).",
        ),
    ] = False,
    worker_concurrency: Annotated[
        int,
        typer.Option(
            envvar="BUCKETJOBS_WORKER_CONCURRENCY",
            min=1,
            max=1000,
            help="Steps the worker runs at once.",
        ),
    ] = 8,
    public_url: Annotated[
        str | None,
        typer.Option(envvar="BUCKETJOBS_PUBLIC_URL", help="Token issuer base (same on every API)."),
    ] = None,
    header_timeout: Annotated[
        float,
        typer.Option(
            envvar="BUCKETJOBS_HEADER_TIMEOUT",
            min=0.1,
            max=3600,
            help="Seconds a request's headers may take to arrive.",
        ),
    ] = 10.0,
    max_connections: Annotated[
        int,
        typer.Option(
            envvar="BUCKETJOBS_MAX_CONNECTIONS",
            min=0,
            help="Open connections in all (0: the file-descriptor limit less 256).",
        ),
    ] = 0,
    max_connections_per_address: Annotated[
        int,
        typer.Option(
            envvar="BUCKETJOBS_MAX_CONNECTIONS_PER_ADDRESS",
            min=1,
            help="Open connections from one client address.",
        ),
    ] = 1024,
) -> None:
    """Run the API and a worker (embedded PostgreSQL and SeaweedFS by default)."""
    from bucketjobs.cli.serve import ServeOptions, serve  # the API: loaded only to serve
    from bucketjobs.storage.secrets import SecretKeyError

    if bool(tls_cert) != bool(tls_key):
        raise typer.BadParameter("--tls-cert and --tls-key go together")
    if s3_endpoint and not (s3_access_key and s3_secret_key):
        raise typer.BadParameter("--s3-endpoint needs --s3-access-key and --s3-secret-key")
    _configure_logging("INFO")
    try:
        serve(ServeOptions(data_dir, host, port, database_url, s3_endpoint, s3_access_key,
                           s3_secret_key, s3_region, tls_cert, tls_key, no_worker,
                           worker_concurrency, public_url,
                           ConnectionLimits(header_timeout, per_address=max_connections_per_address,
                                            total=max_connections)))  # fmt: skip
    except (DataDirBusy, EmbeddedPostgresError, EmbeddedStoreError, SecretKeyError) as exc:
        fail(str(exc))


def _configure_logging(default: str) -> None:
    """BUCKETJOBS_LOG_LEVEL, else `default` (INFO for serve, WARNING for workers); JSON
    lines unless stderr is a terminal (bucketjobs/logs.py)."""
    from bucketjobs.logs import configure

    level = os.environ.get("BUCKETJOBS_LOG_LEVEL", default).upper()
    if level not in logging.getLevelNamesMapping():
        raise typer.BadParameter(f"BUCKETJOBS_LOG_LEVEL {level!r} is not a log level")
    configure(level)


@app.command("worker")
def worker_command(
    database_url: Annotated[
        str,
        typer.Option(
            envvar="BUCKETJOBS_DATABASE_URL",
            help="The shared PostgreSQL (libpq URL; better by environment than argv).",
        ),
    ],
    data_dir: DataDir = Path("./bucketjobs-data"),
    concurrency: Annotated[
        int,
        typer.Option(
            envvar="BUCKETJOBS_WORKER_CONCURRENCY",
            min=1,
            max=1000,
            help="Steps this worker runs at once.",
        ),
    ] = 8,
    inline: Annotated[
        bool,
        typer.Option(
            envvar="BUCKETJOBS_INLINE",
            help="Planners count read-only jobs' pages themselves (one listing, not two);"
            " --no-inline queues every partition so all workers share them.",
        ),
    ] = True,
    stalled_after: Annotated[
        float,
        typer.Option(
            envvar="BUCKETJOBS_STALLED_AFTER",
            min=1.0,
            max=3600.0,
            help="Seconds without a heartbeat before a worker counts as dead and its steps"
            " are handed to others (heartbeats every quarter of this).",
        ),
    ] = 20.0,
    shutdown_timeout: Annotated[
        float,
        typer.Option(
            envvar="BUCKETJOBS_SHUTDOWN_TIMEOUT",
            min=0.0,
            max=3600.0,
            help="Seconds the steps in flight get to finish after SIGTERM/SIGINT; then they"
            " are aborted and handed back (nothing counted twice).",
        ),
    ] = 10.0,
    metrics_port: Annotated[
        int,
        typer.Option(
            envvar="BUCKETJOBS_METRICS_PORT",
            min=0,
            max=65535,
            help="Serve this worker's Prometheus figures (storage latency, process) on this"
            " port; 0: not at all.",
        ),
    ] = 0,
    metrics_host: Annotated[
        str,
        typer.Option(envvar="BUCKETJOBS_METRICS_HOST", help="Address --metrics-port listens on."),
    ] = "127.0.0.1",
) -> None:
    """Run a worker process against a shared database (any number, on any host)."""
    from bucketjobs.db.migrate import upgrade
    from bucketjobs.engine.worker import run_worker
    from bucketjobs.storage.secrets import SecretKeyError, load_fernet

    _configure_logging("WARNING")
    try:
        load_fernet(data_dir)  # no key, or not a key: said before the database is touched
        upgrade(database_url)
        asyncio.run(
            run_worker(
                database_url,
                data_dir.resolve(),
                concurrency=concurrency,
                inline=inline,
                heartbeat_interval=stalled_after / 4,
                stalled_after=stalled_after,
                shutdown_timeout=shutdown_timeout,
                metrics_address=(metrics_host, metrics_port) if metrics_port else None,
            )
        )
    except SecretKeyError as exc:
        fail(str(exc))


def _new_password(from_stdin: bool) -> str:
    """A new password, never from argv (`ps` shows it): the first line of stdin with
    --password-stdin; else BUCKETJOBS_PASSWORD (or BUCKETJOBS_NEW_PASSWORD); else a prompt
    on a terminal, or the first line of stdin when there is none (a script, a pipe)."""
    given = os.environ.get("BUCKETJOBS_PASSWORD") or os.environ.get("BUCKETJOBS_NEW_PASSWORD")
    if given and not from_stdin:
        return given
    if from_stdin or not sys.stdin.isatty():
        secret = sys.stdin.readline().rstrip("\r\n")
        if not secret:
            fail("no password: stdin was empty (give it there or in BUCKETJOBS_PASSWORD)")
        return secret
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))


PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of stdin, even on a terminal.",
    ),
]
Roles = Annotated[list[Role], typer.Option("--role", help="A role to hold (repeat for several).")]


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="The new user's login name.")],
    role: Roles = [Role.USER],  # noqa: B006
    password_stdin: PasswordStdin = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = Path("./bucketjobs-data"),
) -> None:
    """Add a user. Password: BUCKETJOBS_PASSWORD, stdin, or a prompt on a terminal."""
    from bucketjobs.auth.users import create_user

    secret = _new_password(password_stdin)
    roles = [r.value for r in role]
    user = run_in_database(database_url, data_dir, create_user, name, secret, roles)
    console.print(f"created user {user.name} (id {user.id}) with roles {', '.join(user.roles)}")


UserName = Annotated[str, typer.Argument(help="The user's login name.")]


@users_app.command("passwd")
def users_passwd(
    name: UserName,
    password_stdin: PasswordStdin = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = Path("./bucketjobs-data"),
) -> None:
    """Set a user's password; their tokens stop working."""
    from bucketjobs.auth.users import new_password_hash, set_password

    secret = _new_password(password_stdin)

    async def change(conn: Any) -> bool:
        return await set_password(conn, name, new_password_hash(secret))

    if not run_in_database(database_url, data_dir, change):
        fail(f"no user {name!r}")
    console.print(f"password of {name} changed; their tokens are revoked")


@users_app.command("list")
def users_list(
    database_url: DatabaseUrl = None, data_dir: DataDir = Path("./bucketjobs-data")
) -> None:
    """List the users and their roles."""
    from bucketjobs.auth.users import list_users

    table = Table("id", "name", "roles")
    for user in run_in_database(database_url, data_dir, list_users):
        table.add_row(str(user.id), user.name, ", ".join(user.roles))
    console.print(table)


@users_app.command("remove")
def users_remove(
    name: UserName, database_url: DatabaseUrl = None, data_dir: DataDir = Path("./bucketjobs-data")
) -> None:
    """Remove a user; their tokens stop working."""
    from bucketjobs.auth.users import remove_user

    if not run_in_database(database_url, data_dir, remove_user, name):
        fail(f"no user {name!r}")
    console.print(f"removed user {name}")


ComponentOption = Annotated[
    int | None, typer.Option(help="Storage component id (default: the primary).")
]


async def _user_id(conn: Any, name: str) -> int:
    from bucketjobs.auth.users import find_by_name

    user = await find_by_name(conn, name)
    if user is None:
        raise CommandError(f"no user {name!r}")
    return user.id


async def _grant_target(conn: Any, name: str, component: int | None) -> tuple[int, int]:
    """(user id, component id) for a grant command, or exit naming what is missing."""
    from bucketjobs.auth import grants

    return await _user_id(conn, name), component or await grants.primary_component(conn)


@users_app.command("grant")
def users_grant(
    name: UserName,
    pattern: Annotated[str, typer.Argument(help="A bucket name, or a prefix ending in '*'.")],
    write: Annotated[bool, typer.Option("--write", help="WRITE access (implies READ).")] = False,
    component: ComponentOption = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = Path("./bucketjobs-data"),
) -> None:
    """Let a user reach buckets matching PATTERN (READ, or WRITE with --write)."""
    from bucketjobs.auth import grants
    from bucketjobs.auth.access import Access, Grant, check_pattern

    async def grant(conn: Any) -> Grant:
        user_id, component_id = await _grant_target(conn, name, component)
        given = Grant(component_id, check_pattern(pattern), Access.WRITE if write else Access.READ)
        await grants.add(conn, user_id, given)
        return given

    given = run_in_database(database_url, data_dir, grant)
    where = f"{given.bucket_pattern} (component {given.component_id})"
    console.print(f"{name} has {given.access.value} on {where}")


@users_app.command("revoke")
def users_revoke(
    name: UserName,
    pattern: Annotated[str, typer.Argument(help="The bucket pattern granted before.")],
    component: ComponentOption = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = Path("./bucketjobs-data"),
) -> None:
    """Remove a user's grant of PATTERN (jobs already running go on)."""
    from bucketjobs.auth import grants

    async def revoke(conn: Any) -> None:
        user_id, component_id = await _grant_target(conn, name, component)
        if not await grants.remove(conn, user_id, component_id, pattern):
            raise CommandError(f"{name} has no grant of {pattern!r} on component {component_id}")

    run_in_database(database_url, data_dir, revoke)
    console.print(f"revoked {pattern} from {name}")


@users_app.command("grants")
def users_grants(
    name: UserName, database_url: DatabaseUrl = None, data_dir: DataDir = Path("./bucketjobs-data")
) -> None:
    """List a user's grants."""
    from bucketjobs.auth import grants

    async def current(conn: Any) -> list[Any]:
        return await grants.load(conn, await _user_id(conn, name))

    table = Table("component", "bucket pattern", "access")
    for grant in run_in_database(database_url, data_dir, current):
        table.add_row(str(grant.component_id), grant.bucket_pattern, grant.access.value)
    console.print(table)


if __name__ == "__main__":
    app()
