"""`bucketjobs targets …` and `bucketjobs bindings …`: notification targets and which
buckets' events go to them, managed on the installation's database (like `users`), with
the same rules and encryption as the API's `notification/*` routes (notify/)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from bucketjobs.cli.common import DatabaseUrl, DataDir, console, database, fail

targets_app = typer.Typer(help="Manage notification targets (talks to the database directly).")
bindings_app = typer.Typer(help="Bind notification targets to a bucket's events.")
T = TypeVar("T")
DEFAULT_DIR = Path("./bucketjobs-data")


def _run(database_url: str | None, data_dir: Path, action: Callable[[Any, int], Awaitable[T]]) -> T:
    """`action(service, primary component id)` on the installation's database; the
    service's refusals as one line and exit status 1."""
    from bucketjobs.auth import grants
    from bucketjobs.db.session import create_engine
    from bucketjobs.notify.service import NotificationService, TargetConflict, TargetNotFound
    from bucketjobs.storage.secrets import SecretKeyError, check_fernet, load_fernet

    async def call(url: str) -> T:
        db = create_engine(url, pool_size=2)
        try:
            fernet = load_fernet(data_dir)
            async with db.begin() as conn:
                await check_fernet(conn, fernet, data_dir)
                primary = await grants.primary_component(conn)
            service = NotificationService(db, fernet)
            return await action(service, primary)
        finally:
            await db.dispose()

    with database(database_url, data_dir) as url:
        try:
            return asyncio.run(call(url))
        except (TargetConflict, TargetNotFound, ValueError, SecretKeyError) as exc:
            fail(str(exc))


def _config(fields: list[str]) -> dict[str, Any]:
    """`key=value` pairs as a config; `qos` as a number, as the API takes it."""
    config: dict[str, Any] = {}
    for field in fields:
        key, sep, value = field.partition("=")
        if not sep or not key:
            fail(f"{field.split('=')[0]!r}: config fields are given as key=value")
        config[key] = int(value) if key == "qos" and value.isdigit() else value
    return config


TargetId = Annotated[
    int, typer.Argument(metavar="ID", min=1, max=2**31 - 1, help="The target's id (targets list).")
]
Bucket = Annotated[str, typer.Argument(help="The bucket (on the primary storage component).")]


@targets_app.command("add")
def targets_add(
    name: Annotated[str, typer.Argument(help="A name for the target, unique.")],
    kind: Annotated[
        str, typer.Argument(metavar="TYPE", help="WEBHOOK, AMQP, NATS, MQTT or REDIS.")
    ],
    fields: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="KEY=VALUE...",
            help="The type's config (SPEC §4), e.g. url=redis://host:6379/0 mode=STREAM key=s3.",
        ),
    ] = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Create a target; secrets in its config are stored encrypted and never shown."""
    from bucketjobs.notify.config import ConfigError, TargetType, checked_config

    try:
        target = TargetType(kind.upper())
        config = checked_config(target, _config(fields or []))
    except ConfigError as exc:
        fail(str(exc))
    except ValueError:
        fail(f"TYPE must be one of {', '.join(t.value for t in TargetType)}")

    async def create(service: Any, _: int) -> Any:
        return await service.create(name, target, config)

    row = _run(database_url, data_dir, create)
    console.print(f"target {row.id} ({row.name}, {row.type}) created")


@targets_app.command("list")
def targets_list(
    as_json: Annotated[bool, typer.Option("--json", help="JSON for scripts.")] = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """List targets (secrets shown as ***)."""
    from bucketjobs.notify.service import view

    async def targets(service: Any, _: int) -> list[Any]:
        return list(await service.targets())

    rows = [view(row) for row in _run(database_url, data_dir, targets)]
    if as_json:
        console.print_json(json.dumps({"targets": rows}))
        return
    table = Table("id", "name", "type", "config")
    for row in rows:
        table.add_row(row["id"], row["name"], row["type"], json.dumps(row["config"]))
    console.print(table)


@targets_app.command("remove")
def targets_remove(
    target_id: TargetId,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Delete a target (refused while a bucket is bound to it)."""

    async def remove(service: Any, _: int) -> None:
        await service.delete(target_id)

    _run(database_url, data_dir, remove)
    console.print(f"target {target_id} removed")


@targets_app.command("test")
def targets_test(
    target_id: TargetId,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Connect to a target as a job would, without sending; exit 1 if it does not answer."""
    from bucketjobs.notify.senders import probe

    async def test(service: Any, _: int) -> tuple[Any, str | None]:
        target = await service.target(target_id)
        return target, await probe(target)

    target, problem = _run(database_url, data_dir, test)
    if problem is not None:
        fail(f"target {target_id} ({target.name}) did not answer: {problem}")
    console.print(f"target {target_id} ({target.name}, {target.type.value}) answered")


@bindings_app.command("set")
def bindings_set(
    bucket: Bucket,
    target_ids: Annotated[
        list[int] | None,
        typer.Argument(metavar="TARGET_ID...", help="None: remove the bucket's bindings."),
    ] = None,
    events: Annotated[
        list[str] | None,
        typer.Option("--event", help="An S3 event name (repeatable); s3:ObjectCreated:* if none."),
    ] = None,
    prefix: Annotated[str, typer.Option(help="Only keys starting with this.")] = "",
    suffix: Annotated[str, typer.Option(help="Only keys ending with this.")] = "",
    database_url: DatabaseUrl = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Replace BUCKET's bindings: each TARGET_ID takes the given events and key filters."""
    from pydantic import ValidationError

    from bucketjobs.jobs.params import valid_bucket_name
    from bucketjobs.notify.config import Binding

    if not valid_bucket_name(bucket):
        fail(f"{bucket!r} is not a valid S3 bucket name")
    try:
        bindings = [
            Binding(targetId=str(t), events=events or ["s3:ObjectCreated:*"], prefix=prefix,
                    suffix=suffix)
            for t in target_ids or []
        ]  # fmt: skip
    except ValidationError as exc:
        found = exc.errors(include_url=False, include_input=False)[0]
        fail(f"{'.'.join(map(str, found['loc']))}: {found['msg']}")

    async def bind(service: Any, component: int) -> list[Any]:
        return list(await service.set_bindings(component, bucket, bindings))

    rows = _run(database_url, data_dir, bind)
    console.print(f"{bucket}: {len(rows)} binding(s)")


@bindings_app.command("get")
def bindings_get(
    bucket: Bucket,
    as_json: Annotated[bool, typer.Option("--json", help="JSON for scripts.")] = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Show BUCKET's bindings."""
    from bucketjobs.notify.service import binding_view

    async def current(service: Any, component: int) -> list[Any]:
        return list(await service.bindings(component, bucket))

    rows = [binding_view(row) for row in _run(database_url, data_dir, current)]
    if as_json:
        console.print_json(json.dumps({"bindings": rows}))
        return
    table = Table("target", "events", "prefix", "suffix")
    for row in rows:
        table.add_row(row["targetId"], ", ".join(row["events"]), row.get("prefix", ""),
                      row.get("suffix", ""))  # fmt: skip
    console.print(table)
