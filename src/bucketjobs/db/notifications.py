"""Following a PostgreSQL notification channel for as long as the process lives.

Workers hear cancels and API processes hear session changes this way. The database may go
away and come back: the loop reconnects every second, and `on_connected` runs each time
the channel is listened to again, so a follower can catch up on what it missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import psycopg

log = logging.getLogger(__name__)


async def follow(
    conninfo: str,
    channel: str,
    on_payload: Callable[[str], None],
    *,
    on_connected: Callable[[], Awaitable[None]],
    on_lost: Callable[[], None] = lambda: None,
) -> None:
    """Hand every payload on `channel` to `on_payload` until cancelled."""
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute(f"LISTEN {channel}")
                await on_connected()
                async for note in conn.notifies():
                    on_payload(note.payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database is away: try again
            log.warning("listener of %s lost its connection: %s", channel, exc)
        finally:
            on_lost()
        await asyncio.sleep(1)
