"""Sessions an API process has seen live, remembered until the database says otherwise.

Every authenticated request must know that its token's session is still live (not logged
out, password not changed, user not removed). Asking PostgreSQL each time was half the
database work of a `jobs/status`. Instead, a trigger (migration 0005) notifies the
`bucketjobs_sessions` channel with the user's id whenever a `users` or `refresh_families`
row of that user changes, and this cache, listening, forgets the user's sessions.

Correct under races, by two rules:
- An answer read from the database is remembered only if no change was heard between
  the moment the read started and the moment it ended (`ticket` / `remember`): a read
  that saw a session live just before its logout cannot outlive the logout.
- Nothing is served from memory while the listener is not connected (at start, or with
  the database away), and reconnecting forgets everything.
Entries also expire after `ttl` seconds, and the routes that end sessions in this process
forget them at once, before they answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bucketjobs.auth.tokens import Session
from bucketjobs.auth.users import User
from bucketjobs.db.notifications import follow

CHANNEL = "bucketjobs_sessions"


class LiveSessions:
    def __init__(
        self,
        ttl: float = 30.0,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self.listening = False
        self._epoch = 0  # changes heard so far
        self._live: dict[tuple[int, str, int], tuple[float, User]] = {}

    def get(self, session: Session) -> User | None:
        if not self.listening:
            return None
        found = self._live.get((session.user_id, session.session_id, session.generation))
        if found is None or self.clock() - found[0] > self.ttl:
            return None
        return found[1]

    def ticket(self) -> int:
        """Taken before reading a session from the database; handed back to `remember`."""
        return self._epoch

    def remember(self, session: Session, user: User, ticket: int) -> None:
        if not self.listening or ticket != self._epoch:
            return  # a change was heard while reading: the answer may be stale
        if len(self._live) >= self.max_entries:
            self._live.clear()
        key = (session.user_id, session.session_id, session.generation)
        self._live[key] = (self.clock(), user)

    def forget_user(self, user_id: int) -> None:
        self._epoch += 1
        for key in [k for k in self._live if k[0] == user_id]:
            del self._live[key]

    def forget_all(self) -> None:
        self._epoch += 1
        self._live.clear()

    async def listen(self, conninfo: str) -> None:
        """Follow the channel until cancelled, reconnecting when the database goes away."""
        await follow(
            conninfo, CHANNEL, self._changed, on_connected=self._connected, on_lost=self._lost
        )

    def _changed(self, payload: str) -> None:
        try:
            self.forget_user(int(payload))
        except ValueError:
            self.forget_all()

    async def _connected(self) -> None:
        self.forget_all()  # whatever changed while away
        self.listening = True

    def _lost(self) -> None:
        self.listening = False
        self.forget_all()
