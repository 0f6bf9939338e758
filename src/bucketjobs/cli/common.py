"""What every admin command shares: the consoles, one-line failures, the database options,
and running an action in one transaction on the installation's database."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from bucketjobs.cli.data_dir import DataDirBusy, exclusive, held, prepare
from bucketjobs.db.embedded import EmbeddedPostgresError

console = Console()
errors = Console(stderr=True, soft_wrap=True, highlight=False)
T = TypeVar("T")


def fail(message: str) -> NoReturn:
    """One line on stderr, exit status 1: what the operator must change, no traceback."""
    errors.print(f"[red]error:[/red] {escape(message)}")
    sys.exit(1)


DataDir = Annotated[
    Path, typer.Option(envvar="BUCKETJOBS_DATA_DIR", help="Where embedded state and keys live.")
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(envvar="BUCKETJOBS_DATABASE_URL", help="External PostgreSQL (libpq URL)."),
]


@contextlib.contextmanager
def database(database_url: str | None, data_dir: Path) -> Iterator[str]:
    """The database URL given, or the embedded one of `data_dir`: a running server's as it
    is, else started for this command (holding the data dir) and stopped after it. A data
    dir with no installation is an error: an admin command never makes a new one (it
    would hold no users, and its PostgreSQL would be left for nobody to stop)."""
    from bucketjobs.db.embedded import EmbeddedPostgres
    from bucketjobs.db.migrate import upgrade

    if database_url:
        upgrade(database_url)
        yield database_url
        return
    path = data_dir.resolve()
    if not (path / "postgres" / "PG_VERSION").is_file():
        fail(
            f"no bucketjobs installation in {path}: run this where `bucketjobs serve` keeps"
            " its data, or pass --data-dir (BUCKETJOBS_DATA_DIR) or --database-url"
            " (BUCKETJOBS_DATABASE_URL)"
        )
    path = prepare(path)
    postgres = EmbeddedPostgres(path / "postgres")
    try:
        with contextlib.ExitStack() as stack:
            alone = not held(path)
            if alone:
                stack.enter_context(exclusive(path))
                stack.callback(postgres.stop)
            url = postgres.start(adopt=alone)
            upgrade(url)
            yield url
    except (DataDirBusy, EmbeddedPostgresError) as exc:
        fail(str(exc))


async def _call(url: str, action: Callable[..., Awaitable[T]], *args: Any) -> T:
    from bucketjobs.db.session import create_engine

    db = create_engine(url, pool_size=1)
    try:
        async with db.begin() as conn:
            return await action(conn, *args)
    finally:
        await db.dispose()


class CommandError(Exception):
    """An admin command's error: printed on one line, exit status 1."""


def run_in_database(
    database_url: str | None, data_dir: Path, action: Callable[..., Awaitable[T]], *args: Any
) -> T:
    with database(database_url, data_dir) as url:
        return run_with_database(url, action, *args)


def run_with_database(url: str, action: Callable[..., Awaitable[T]], *args: Any) -> T:
    from bucketjobs.auth.access import GrantError
    from bucketjobs.auth.users import UserError
    from bucketjobs.notify.service import TargetConflict, TargetNotFound

    refusals = (CommandError, GrantError, UserError, TargetConflict, TargetNotFound)
    try:
        return asyncio.run(_call(url, action, *args))
    except refusals as exc:
        fail(str(exc))
