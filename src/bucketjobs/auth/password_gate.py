"""Bound password hashing in total, and share it fairly between client addresses.

argon2 costs ~50 ms of a core by design. Without a bound, a flood of wrong logins (each with
a fresh user name, so no throttle applies) queues hashes in front of real users' logins. The
gate runs at most `slots` hashes at once; when more wait, slots go round-robin between client
addresses, so a real user waits for at most one hash per other address, however many the
flooding address has queued. Waiting is bounded per address and in total; beyond that the
caller is told to come back (429).
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class GateFull(Exception):
    """Too many password checks waiting from this address, or in total."""


class PasswordGate:
    def __init__(self, slots: int | None = None, per_address: int = 64, total: int = 1024) -> None:
        self._free = slots or max(1, os.cpu_count() or 1)
        self.per_address = per_address
        self.total = total
        # Addresses in the order they are served next, each with its waiters in order.
        self._queues: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._waiting = 0

    @property
    def waiting(self) -> int:
        return self._waiting

    @asynccontextmanager
    async def admit(self, address: str) -> AsyncIterator[None]:
        if self._free > 0 and not self._queues:
            self._free -= 1
        else:
            await self._wait_turn(address)
        try:
            yield
        finally:
            self._release()

    async def _wait_turn(self, address: str) -> None:
        queue = self._queues.get(address)
        if queue is not None and len(queue) >= self.per_address:
            raise GateFull(f"too many logins waiting from {address}")
        if self._waiting >= self.total:
            raise GateFull("too many logins waiting")
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(address, deque()).append(turn)
        self._waiting += 1
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # the slot was handed over as we were cancelled
            else:
                self._forget(address, turn)
            raise

    def _forget(self, address: str, turn: asyncio.Future[None]) -> None:
        queue = self._queues.get(address)
        if queue is not None and turn in queue:
            queue.remove(turn)
            self._waiting -= 1
            if not queue:
                del self._queues[address]

    def _release(self) -> None:
        """Hand the slot to the next address in turn, or free it."""
        while self._queues:
            address, queue = next(iter(self._queues.items()))
            turn = queue.popleft()
            self._waiting -= 1
            if queue:
                self._queues.move_to_end(address)
            else:
                del self._queues[address]
            if not turn.done():
                turn.set_result(None)
                return
        self._free += 1
