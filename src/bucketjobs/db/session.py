"""Engine creation and URL handling: one async SQLAlchemy engine per process."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

T = TypeVar("T")

# One FIFO queue of callers per read engine, as wide as its pool (see `read`).
_READ_GATES: weakref.WeakKeyDictionary[object, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def sqlalchemy_url(url: str) -> str:
    """`postgresql://...` (libpq form, as operators write it) → the psycopg 3 dialect URL."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The inverse, for psycopg and procrastinate, which take plain libpq URLs."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 16) -> AsyncEngine:
    """A pool of `pool_size` connections and no overflow: past it, callers wait for a
    connection. Overflow connections are opened for a burst and closed when it ebbs, and
    each costs a backend fork and a SCRAM exchange on both sides: under 100 clients the API
    spent ~12 % of its CPU opening and closing them (docs/PERFORMANCE.md)."""
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def create_read_engine(url: str, *, pool_size: int = 16) -> AsyncEngine:
    """A pool for one-statement reads (the API's session check, a job's status): each
    statement runs on its own (no BEGIN and ROLLBACK round trips), and a connection is not
    pinged before use; `read` retries once on a connection the server dropped instead.
    Together that halves each read's client CPU (410 → 250 µs, docs/PERFORMANCE.md).
    Never for writes: `begin()` on it does not make its statements one transaction."""
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=0,
        isolation_level="AUTOCOMMIT",
        pool_recycle=1800,
    )


async def read(db: AsyncEngine, query: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """`query` on a connection of `db`, once more on a fresh one if the server had dropped
    the first (a restarted PostgreSQL: the pool then discards every connection it held).

    Callers queue, in order, at a semaphore as wide as the pool before they ask it for a
    connection. SQLAlchemy's async pool waits with a task and a timer per waiter, and lets
    a newcomer take a returned connection ahead of the waiter it woke, which then queues
    again at the back: under 100 clients the p99 was 0.8 to 1.5 s, and the CPU per read
    grew with the number waiting (docs/PERFORMANCE.md)."""
    gate = _READ_GATES.get(db.sync_engine)
    if gate is None:
        gate = _READ_GATES[db.sync_engine] = asyncio.Semaphore(db.sync_engine.pool.size())  # type: ignore[attr-defined]
    async with gate:
        try:
            async with db.connect() as conn:
                return await query(conn)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        async with db.connect() as conn:
            return await query(conn)
