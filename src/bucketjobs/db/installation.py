"""Installation-wide values kept in the database: serial number and shared secrets.

Secrets live here (not in one host's data dir) so every API process, on any host, signs and
checks CSRF tokens and page tokens the same way, across restarts.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bucketjobs.db.models import installation


async def get_or_create(conn: AsyncConnection, key: str, make: Callable[[], str]) -> str:
    """The stored value of `key`; the first caller's `make()` wins a race."""
    await conn.execute(insert(installation).values(key=key, value=make()).on_conflict_do_nothing())
    value = await conn.scalar(select(installation.c.value).where(installation.c.key == key))
    assert value is not None
    return str(value)


async def load_installation(conn: AsyncConnection) -> dict[str, str]:
    return {
        "serial": await get_or_create(conn, "serial", lambda: "BJ" + secrets.token_hex(8).upper()),
        "csrf_secret": await get_or_create(conn, "csrf_secret", lambda: secrets.token_hex(32)),
        "page_secret": await get_or_create(conn, "page_secret", lambda: secrets.token_hex(32)),
    }
