"""Users: creation, lookup, removal and the first-start administrator."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bucketjobs.auth.passwords import hash_password
from bucketjobs.auth.permissions import ROLES
from bucketjobs.db.models import users


@dataclass(frozen=True)
class User:
    id: int
    name: str
    roles: list[str]
    password_hash: str


def _user(row: object) -> User:
    return User(row.id, row.name, list(row.roles), row.password_hash)  # type: ignore[attr-defined]


class UserError(ValueError):
    pass


def check_roles(roles: list[str]) -> None:
    unknown = sorted(set(roles) - set(ROLES))
    if unknown or not roles:
        raise UserError(f"unknown or missing roles: {unknown}; known: {sorted(ROLES)}")


async def create_user(conn: AsyncConnection, name: str, password: str, roles: list[str]) -> User:
    check_roles(roles)
    if not name or len(name) > 128:
        raise UserError("user name must be 1 to 128 characters")
    row = (
        await conn.execute(
            insert(users)
            .values(name=name, password_hash=hash_password(password), roles=roles)
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(users)
        )
    ).first()
    if row is None:
        raise UserError(f"user {name!r} already exists")
    return _user(row)


async def find_by_name(conn: AsyncConnection, name: str) -> User | None:
    row = (await conn.execute(select(users).where(users.c.name == name))).first()
    return _user(row) if row else None


async def get_user(conn: AsyncConnection, user_id: int) -> User | None:
    row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    return _user(row) if row else None


async def list_users(conn: AsyncConnection) -> list[User]:
    return [_user(row) for row in await conn.execute(select(users).order_by(users.c.id))]


async def remove_user(conn: AsyncConnection, name: str) -> bool:
    result = await conn.execute(delete(users).where(users.c.name == name))
    return bool(result.rowcount)


async def ensure_admin(conn: AsyncConnection, password: str | None) -> str | None:
    """Create `admin` on first start. Returns the generated password if one was made."""
    if await conn.scalar(select(func.count()).select_from(users)):
        return None
    generated = None if password else secrets.token_urlsafe(18)
    await create_user(conn, "admin", password or generated or "", ["administrator"])
    return generated
