"""Login sessions: one refresh-token family per login, rotated on every refresh.

A refresh presents the family's current token and gets the next one; presenting an older
token of the family means a copy leaked, so the whole family (and the access tokens issued
from it) is revoked. Logout revokes one family, a password change every family of the user.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bucketjobs.auth.tokens import Session
from bucketjobs.auth.users import User, user_of
from bucketjobs.db.models import refresh_families, users

log = logging.getLogger(__name__)


async def start(conn: AsyncConnection, user: User, now: dt.datetime, ttl: int) -> Session:
    """A new family for a successful password login."""
    session = Session(
        user.id, user.name, secrets.token_urlsafe(16), user.token_generation, _refresh_id()
    )
    # Expired families go as new ones come (index on expires_at): the table stays small.
    await conn.execute(delete(refresh_families).where(refresh_families.c.expires_at < now))
    await conn.execute(
        insert(refresh_families).values(
            id=session.session_id,
            user_id=user.id,
            current=session.refresh_id,
            expires_at=now + dt.timedelta(seconds=ttl),
        )
    )
    return session


async def rotate(
    conn: AsyncConnection, presented: Session, now: dt.datetime, ttl: int
) -> Session | None:
    """The next session of `presented`'s family, or None: refused. A reused token revokes
    its family in `conn`'s transaction, which the caller commits like any other."""
    row = (
        await conn.execute(
            select(refresh_families, users.c.name, users.c.token_generation)
            .join(users, users.c.id == refresh_families.c.user_id)
            .where(refresh_families.c.id == presented.session_id)
            .with_for_update(of=refresh_families)
        )
    ).first()
    if row is None or row.revoked or row.expires_at <= now or row.user_id != presented.user_id:
        return None
    if row.token_generation != presented.generation:
        return None
    if row.current != presented.refresh_id:
        await conn.execute(
            update(refresh_families)
            .where(refresh_families.c.id == presented.session_id)
            .values(revoked=True)
        )
        log.warning("refresh token of user %s presented twice: session revoked", presented.user_id)
        return None
    following = Session(
        row.user_id, row.name, presented.session_id, row.token_generation, _refresh_id()
    )
    await conn.execute(
        update(refresh_families)
        .where(refresh_families.c.id == presented.session_id)
        .values(current=following.refresh_id, expires_at=now + dt.timedelta(seconds=ttl))
    )
    return following


async def end(conn: AsyncConnection, session: Session) -> None:
    """Logout: the family and every token issued from it stop working."""
    await conn.execute(
        update(refresh_families)
        .where(
            refresh_families.c.id == session.session_id,
            refresh_families.c.user_id == session.user_id,
        )
        .values(revoked=True)
    )


def _refresh_id() -> str:
    return secrets.token_urlsafe(16)


# Built once: the hot path of every authenticated request. A statement built per call
# costs more in SQLAlchemy's construction and cache key than its round trip does.
_HOLDER = (
    select(users)
    .join(refresh_families, refresh_families.c.user_id == users.c.id)
    .where(
        users.c.id == bindparam("user_id"),
        refresh_families.c.id == bindparam("session_id"),
        refresh_families.c.revoked.is_(False),
        users.c.token_generation == bindparam("generation"),
    )
)


async def holder(conn: AsyncConnection, session: Session) -> User | None:
    """The user an access token speaks for, if its session is live (one query per call)."""
    values = {
        "user_id": session.user_id,
        "session_id": session.session_id,
        "generation": session.generation,
    }
    row = (await conn.execute(_HOLDER, values)).first()
    return None if row is None else user_of(row)
