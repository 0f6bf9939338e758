"""Slow down repeated failed logins per user name; successful logins are never throttled.

Kept per API process: a guess rate bounded per process is the goal, not a global ledger.
Applies whether or not the user exists, so the answer reveals nothing about existence.
"""

from __future__ import annotations

from collections import OrderedDict

from bucketjobs.clock import Clock


class LoginThrottle:
    def __init__(
        self, clock: Clock, free_failures: int = 5, window: float = 300, capacity: int = 10_000
    ) -> None:
        self.clock = clock
        self.free_failures = free_failures
        self.window = window
        self.capacity = capacity
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def retry_after(self, username: str) -> float:
        """Seconds the caller must wait before another attempt (0 = may try now)."""
        count, last = self._failures.get(username, (0, 0.0))
        now = self.clock.timestamp()
        if now - last > self.window:
            return 0.0
        if count < self.free_failures:
            return 0.0
        delay = min(2.0 ** (count - self.free_failures), self.window)
        return max(0.0, last + delay - now)

    def failed(self, username: str) -> None:
        count, last = self._failures.pop(username, (0, 0.0))
        now = self.clock.timestamp()
        if now - last > self.window:
            count = 0
        self._failures[username] = (count + 1, now)
        while len(self._failures) > self.capacity:
            self._failures.popitem(last=False)

    def succeeded(self, username: str) -> None:
        self._failures.pop(username, None)
