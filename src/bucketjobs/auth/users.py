"""Users: creation, lookup, removal and the first-start administrator."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bucketjobs.auth.passwords import hash_password
from bucketjobs.auth.permissions import ROLES
from bucketjobs.db.models import refresh_families, users


@dataclass(frozen=True)
class User:
    id: int
    name: str
    roles: list[str]
    password_hash: str
    token_generation: int = 0


def user_of(row: Any) -> User:
    return User(row.id, row.name, list(row.roles), row.password_hash, row.token_generation)


class UserError(ValueError):
    pass


MAX_NAME = 128
MAX_PASSWORD = 1024  # argon2 hashes any length; a bound keeps one login's work bounded


def check_roles(roles: list[str]) -> None:
    unknown = sorted(set(roles) - set(ROLES))
    if unknown or not roles:
        given = ", ".join(unknown) if unknown else "none given"
        raise UserError(f"unknown or missing roles ({given}); roles are {', '.join(ROLES)}")


async def create_user(conn: AsyncConnection, name: str, password: str, roles: list[str]) -> User:
    check_roles(roles)
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise UserError(f"a user name must be 1 to {MAX_NAME} printable characters")
    check_password(password)
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
    return user_of(row)


async def find_by_name(conn: AsyncConnection, name: str) -> User | None:
    row = (await conn.execute(select(users).where(users.c.name == name))).first()
    return user_of(row) if row else None


async def get_user(conn: AsyncConnection, user_id: int) -> User | None:
    row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    return user_of(row) if row else None


def new_password_hash(password: str) -> str:
    """The argon2 hash of an acceptable new password (argon2 takes ~50 ms of a core: callers
    on an event loop run this in a thread)."""
    check_password(password)
    return hash_password(password)


async def set_password(conn: AsyncConnection, name: str, password_hash: str) -> bool:
    """Store a new password's hash (`new_password_hash`); every token of the user stops
    working (the generation moves on, every session is revoked)."""
    user_id = await conn.scalar(
        update(users)
        .where(users.c.name == name)
        .values(
            password_hash=password_hash,
            token_generation=users.c.token_generation + 1,
        )
        .returning(users.c.id)
    )
    if user_id is None:
        return False
    await conn.execute(
        update(refresh_families).where(refresh_families.c.user_id == user_id).values(revoked=True)
    )
    return True


def check_password(password: str) -> None:
    if not 1 <= len(password) <= MAX_PASSWORD:
        raise UserError(f"a password must be 1 to {MAX_PASSWORD} characters")
    if "\x00" in password:
        raise UserError("a password must not contain NUL")


async def list_users(conn: AsyncConnection) -> list[User]:
    return [user_of(row) for row in await conn.execute(select(users).order_by(users.c.id))]


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
