"""Notification targets and bucket bindings as an operator manages them (SPEC §4).

The routes in api/notifications.py parse and answer; every rule and statement is here, as
storage/component_service.py is for components. A target's whole config is encrypted with
the installation's Fernet key; the stored `config` column holds only what an answer may
show (secrets as `***`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bucketjobs.db.models import bucket_notifications, notification_targets
from bucketjobs.notify.config import Binding, TargetType, check_bindings, secret_free


class TargetNotFound(LookupError):
    def __init__(self, target_id: str) -> None:
        super().__init__(f"notification target {target_id} not found")


class TargetConflict(ValueError):
    """A change that would break what exists: a taken name, a target still bound."""


@dataclass(frozen=True)
class Target:
    """A target with its whole config (secrets included): for delivery, never answered."""

    id: int
    name: str
    type: TargetType
    config: dict[str, Any]


def view(row: Any) -> dict[str, Any]:
    """A target as answers show it: `id` as a string (SPEC §4), secrets masked."""
    return {"id": str(row.id), "name": row.name, "type": row.type, "config": row.config}


def binding_view(row: Any) -> dict[str, Any]:
    shown: dict[str, Any] = {"targetId": str(row.target_id), "events": list(row.events)}
    if row.prefix:
        shown["prefix"] = row.prefix
    if row.suffix:
        shown["suffix"] = row.suffix
    return shown


class NotificationService:
    def __init__(self, db: AsyncEngine, fernet: Fernet) -> None:
        self.db = db
        self.fernet = fernet

    async def create(self, name: str, target: TargetType, config: dict[str, Any]) -> Any:
        """Store a target whose `config` is already checked (notify.config.checked_config)."""
        sealed = self.fernet.encrypt(json.dumps(config).encode()).decode()
        statement = (
            notification_targets.insert()
            .values(name=name, type=target.value, config=secret_free(target, config),
                    config_enc=sealed)
            .returning(notification_targets)
        )  # fmt: skip
        try:
            async with self.db.begin() as conn:
                return (await conn.execute(statement)).one()
        except IntegrityError:
            raise TargetConflict(f"a notification target named {name[:128]!r} exists") from None

    async def targets(self) -> list[Any]:
        async with self.db.connect() as conn:
            query = select(notification_targets).order_by(notification_targets.c.id)
            return list(await conn.execute(query))

    async def delete(self, target_id: int) -> None:
        """Remove a target; refused while a bucket is bound to it (naming a few)."""
        async with self.db.begin() as conn:
            query = (
                select(bucket_notifications.c.bucket_name)
                .where(bucket_notifications.c.target_id == target_id)
                .order_by(bucket_notifications.c.bucket_name)
                .limit(4)
            )
            buckets = list((await conn.execute(query)).scalars())
            if buckets:
                named = ", ".join(buckets[:3]) + (", …" if len(buckets) > 3 else "")
                raise TargetConflict(
                    f"notification target {target_id} is bound to bucket(s) {named}:"
                    " remove those bindings first"
                )
            table = notification_targets
            try:
                gone = await conn.execute(delete(table).where(table.c.id == target_id))
            except IntegrityError:  # bound by a `set_bindings` that committed meanwhile
                raise TargetConflict(
                    f"notification target {target_id} was just bound to a bucket"
                ) from None
            if gone.rowcount == 0:
                raise TargetNotFound(str(target_id))

    async def target(self, target_id: int) -> Target:
        """One target with its secrets, for delivery or a test."""
        async with self.db.connect() as conn:
            table = notification_targets
            row = (await conn.execute(select(table).where(table.c.id == target_id))).first()
        if row is None:
            raise TargetNotFound(str(target_id))
        config = json.loads(self.fernet.decrypt(row.config_enc.encode()))
        return Target(row.id, row.name, TargetType(row.type), config)

    async def set_bindings(
        self, component_id: int, bucket: str, bindings: list[Binding]
    ) -> list[Any]:
        """Replace the bucket's bindings with `bindings`, all or nothing."""
        check_bindings(bindings)
        ids = [int(b.targetId) for b in bindings]
        table = bucket_notifications
        async with self.db.begin() as conn:
            if ids:
                known_query = select(notification_targets.c.id).where(
                    notification_targets.c.id.in_(ids)
                )
                known = set((await conn.execute(known_query)).scalars())
                for n, target_id in enumerate(ids):
                    if target_id not in known:
                        raise TargetNotFound(f"{target_id} (bindings[{n}].targetId)")
            where = (table.c.component_id == component_id) & (table.c.bucket_name == bucket)
            await conn.execute(delete(table).where(where))
            if bindings:
                rows = [
                    {"component_id": component_id, "bucket_name": bucket, "target_id": target_id,
                     "position": n, "events": b.events, "prefix": b.prefix, "suffix": b.suffix}
                    for n, (target_id, b) in enumerate(zip(ids, bindings, strict=True))
                ]  # fmt: skip
                try:
                    await conn.execute(table.insert(), rows)
                except IntegrityError:  # a target deleted since it was looked up
                    raise TargetConflict("a target of these bindings was just deleted") from None
            return list(await conn.execute(select(table).where(where).order_by(table.c.position)))

    async def bindings(self, component_id: int, bucket: str) -> list[Any]:
        table = bucket_notifications
        where = (table.c.component_id == component_id) & (table.c.bucket_name == bucket)
        async with self.db.connect() as conn:
            return list(await conn.execute(select(table).where(where).order_by(table.c.position)))
