"""Checking a user name and password: throttle, bounded hashing, then argon2.

Used by the token endpoint's password grant and by a user changing their own password.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from bucketjobs.auth.password_gate import GateFull, PasswordGate
from bucketjobs.auth.passwords import verify_password
from bucketjobs.auth.throttle import LoginThrottle
from bucketjobs.auth.users import MAX_NAME, User, find_by_name


class LoginRefused(Exception):
    """Wrong credentials, or come back after `retry_after` seconds (when > 0)."""

    def __init__(self, retry_after: float = 0.0) -> None:
        super().__init__("login refused")
        self.retry_after = retry_after


class LoginChecker:
    def __init__(self, db: AsyncEngine, throttle: LoginThrottle, gate: PasswordGate) -> None:
        self.db = db
        self.throttle = throttle
        self.gate = gate

    async def check(self, username: str, password: str, address: str) -> User:
        wait = self.throttle.retry_after(username, address)
        if wait > 0:
            raise LoginRefused(wait)
        user = None
        if len(username) <= MAX_NAME:  # longer names cannot exist; still cost a hash
            async with self.db.connect() as conn:
                user = await find_by_name(conn, username)
        try:
            async with self.gate.admit(address):
                ok = await asyncio.to_thread(
                    verify_password, user.password_hash if user else None, password
                )
        except GateFull:
            raise LoginRefused(1.0) from None
        if not ok or user is None:
            self.throttle.failed(username, address)
            raise LoginRefused()
        self.throttle.succeeded(username, address)
        return user
