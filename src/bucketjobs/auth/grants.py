"""Bucket grants in the database: read, replace, add and remove a user's grants.

The rules that decide what a grant allows are in `auth/access.py`; this module only stores.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import and_, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bucketjobs.auth.access import MAX_GRANTS, Access, Grant, GrantError, allows
from bucketjobs.auth.caller import Caller
from bucketjobs.db.models import bucket_grants, storage_components


async def load(conn: AsyncConnection, user_id: int) -> list[Grant]:
    rows = await conn.execute(
        select(bucket_grants)
        .where(bucket_grants.c.user_id == user_id)
        .order_by(bucket_grants.c.component_id, bucket_grants.c.bucket_pattern)
    )
    return [Grant(row.component_id, row.bucket_pattern, Access(row.access)) for row in rows]


async def primary_component(conn: AsyncConnection) -> int:
    found = await conn.scalar(
        select(storage_components.c.id).where(storage_components.c.is_primary)
    )
    if found is None:
        raise GrantError("component: no primary storage component is configured")
    return int(found)


async def check_components(conn: AsyncConnection, grants: Iterable[Grant]) -> None:
    wanted = {grant.component_id for grant in grants}
    if not wanted:
        return
    known = set(
        await conn.scalars(
            select(storage_components.c.id).where(storage_components.c.id.in_(wanted))
        )
    )
    missing = sorted(wanted - known)
    if missing:
        raise GrantError(f"component {missing[0]} is not a storage component")


async def replace(conn: AsyncConnection, user_id: int, grants: Sequence[Grant]) -> list[Grant]:
    """Make `grants` the user's whole set (the latest of duplicates wins)."""
    unique = {(g.component_id, g.bucket_pattern): g for g in grants}
    if len(unique) > MAX_GRANTS:
        raise GrantError(f"grants: at most {MAX_GRANTS} per user")
    await check_components(conn, unique.values())
    await conn.execute(delete(bucket_grants).where(bucket_grants.c.user_id == user_id))
    if unique:
        await conn.execute(
            insert(bucket_grants),
            [
                {
                    "user_id": user_id,
                    "component_id": g.component_id,
                    "bucket_pattern": g.bucket_pattern,
                    "access": g.access.value,
                }
                for g in unique.values()
            ],
        )
    return await load(conn, user_id)


async def add(conn: AsyncConnection, user_id: int, grant: Grant) -> None:
    await check_components(conn, [grant])
    count = await conn.scalar(
        select(func.count()).select_from(bucket_grants).where(bucket_grants.c.user_id == user_id)
    )
    if (count or 0) >= MAX_GRANTS:
        raise GrantError(f"grants: at most {MAX_GRANTS} per user")
    stmt = insert(bucket_grants).values(
        user_id=user_id,
        component_id=grant.component_id,
        bucket_pattern=grant.bucket_pattern,
        access=grant.access.value,
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["user_id", "component_id", "bucket_pattern"],
            set_={"access": stmt.excluded.access},
        )
    )


async def remove(conn: AsyncConnection, user_id: int, component_id: int, pattern: str) -> bool:
    result = await conn.execute(
        delete(bucket_grants).where(
            and_(
                bucket_grants.c.user_id == user_id,
                bucket_grants.c.component_id == component_id,
                bucket_grants.c.bucket_pattern == pattern,
            )
        )
    )
    return bool(result.rowcount)


async def reaches(
    conn: AsyncConnection, caller: Caller, wanted: Iterable[tuple[int, str, Access]]
) -> tuple[int, str, Access] | None:
    """The first (component, bucket, access) of `wanted` the caller lacks; None if all held."""
    if caller.all_buckets:
        return None
    held = await load(conn, caller.user_id)
    for component_id, bucket, needed in wanted:
        if not allows(held, component_id, bucket, needed):
            return component_id, bucket, needed
    return None
