"""The rules that make remembering live sessions safe (auth/live_sessions.py)."""

from __future__ import annotations

from bucketjobs.auth.live_sessions import LiveSessions
from bucketjobs.auth.tokens import Session
from bucketjobs.auth.users import User

ALICE = User(1, "alice", ["user"], "hash")
SESSION = Session(1, "alice", "s1", 0)


def _listening(now: list[float]) -> LiveSessions:
    cache = LiveSessions(ttl=30.0, clock=lambda: now[0])
    cache.listening = True
    return cache


def test_remembered_until_the_user_changes():
    now = [0.0]
    cache = _listening(now)
    cache.remember(SESSION, ALICE, cache.ticket())
    assert cache.get(SESSION) == ALICE
    assert cache.get(Session(1, "alice", "s1", 1)) is None  # another generation
    cache.forget_user(2)
    assert cache.get(SESSION) == ALICE
    cache.forget_user(1)
    assert cache.get(SESSION) is None


def test_a_read_that_overlapped_a_change_is_not_remembered():
    cache = _listening([0.0])
    ticket = cache.ticket()  # a request starts reading the session: live
    cache.forget_user(1)  # meanwhile the user logs out elsewhere
    cache.remember(SESSION, ALICE, ticket)  # the read ends
    assert cache.get(SESSION) is None


def test_nothing_is_served_without_the_listener_and_entries_expire():
    now = [0.0]
    cache = _listening(now)
    cache.remember(SESSION, ALICE, cache.ticket())
    cache.listening = False
    assert cache.get(SESSION) is None
    cache.listening = True
    assert cache.get(SESSION) == ALICE
    now[0] = 31.0
    assert cache.get(SESSION) is None
    deaf = LiveSessions()
    deaf.remember(SESSION, ALICE, deaf.ticket())
    deaf.listening = True
    assert deaf.get(SESSION) is None, "remembered while not listening"


def test_bounded():
    cache = _listening([0.0])
    cache.max_entries = 3
    for n in range(10):
        cache.remember(Session(n, "u", "s", 0), ALICE, cache.ticket())
    assert len(cache._live) <= 3
