"""The one source of "now", so tests can move time (lifecycle, token expiry, timestamps)."""

from __future__ import annotations

import datetime as dt
import time


class Clock:
    """Wall-clock time in UTC. Subclass or replace `now` in tests."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def timestamp(self) -> float:
        return time.time()


clock = Clock()


def rfc3339_ms(value: dt.datetime | None) -> str | None:
    """RFC 3339 UTC with millisecond precision, as the wire format wants."""
    if value is None:
        return None
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
