"""Slow down repeated failed logins; successful logins are never throttled.

Failures count per (user name, client address): an attacker's guesses from one place never
lock out the real user logging in from another (SPEC §2: clients in the field log in before
every call). Guesses spread over many addresses are caught by a per-name count with a higher
threshold; when it trips, only addresses that have not logged in as that user lately are
slowed, and the event is logged once per window.

Kept per API process and bounded in size: a guess rate bounded per process is the goal, not
a global ledger. Applies whether or not the user exists, so answers reveal nothing.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Hashable

from bucketjobs.clock import Clock

log = logging.getLogger(__name__)


class _Failures:
    """Failure counts per key within a window, oldest dropped beyond `capacity`."""

    def __init__(self, free: int, window: float, capacity: int) -> None:
        self.free = free
        self.window = window
        self.capacity = capacity
        self._counts: OrderedDict[Hashable, tuple[int, float]] = OrderedDict()

    def delay(self, key: Hashable, now: float) -> float:
        count, last = self._counts.get(key, (0, 0.0))
        if now - last > self.window or count < self.free:
            return 0.0
        return max(0.0, last + min(2.0 ** (count - self.free), self.window) - now)

    def add(self, key: Hashable, now: float) -> int:
        count, last = self._counts.pop(key, (0, 0.0))
        count = 1 if now - last > self.window else count + 1
        self._counts[key] = (count, now)
        while len(self._counts) > self.capacity:
            self._counts.popitem(last=False)
        return count

    def clear(self, key: Hashable) -> None:
        self._counts.pop(key, None)


class LoginThrottle:
    def __init__(
        self,
        clock: Clock,
        free_failures: int = 5,
        free_failures_per_name: int = 50,
        window: float = 300,
        capacity: int = 10_000,
    ) -> None:
        self.clock = clock
        self._pairs = _Failures(free_failures, window, capacity)
        self._names = _Failures(free_failures_per_name, window, capacity)
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.window = window
        self.capacity = capacity

    def retry_after(self, username: str, address: str) -> float:
        """Seconds the caller must wait before another attempt (0 = may try now)."""
        now = self.clock.timestamp()
        wait = self._pairs.delay((username, address), now)
        if (username, address) not in self._known:
            wait = max(wait, self._names.delay(username, now))
        return wait

    def failed(self, username: str, address: str) -> None:
        now = self.clock.timestamp()
        self._pairs.add((username, address), now)
        if self._names.add(username, now) == self._names.free:
            log.warning(
                "%d failed logins as one user name from many addresses within %ds:"
                " slowing addresses that have not logged in as it",
                self._names.free,
                int(self.window),
            )

    def succeeded(self, username: str, address: str) -> None:
        self._pairs.clear((username, address))
        self._known.pop((username, address), None)
        self._known[(username, address)] = self.clock.timestamp()
        while len(self._known) > self.capacity:
            self._known.popitem(last=False)
