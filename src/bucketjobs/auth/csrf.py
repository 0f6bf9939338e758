"""Stateless CSRF: the token is derived from the session value, an expiry and a server secret.

Clients in the field fetch a new pair before every call, so nothing is stored per session;
any API process that shares the secret (kept in the database) accepts any other's tokens.
Values are hex and `.` only: clients split cookies naively on `=`, `;` and `,`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from bucketjobs.clock import Clock

SESSION_COOKIE = "vertx-web.session"
TOKEN_COOKIE = "XSRF-TOKEN"
HEADER = "X-XSRF-TOKEN"
MAX_VALUE = 256  # issued values are 64 and ~73 characters


class CsrfError(Exception):
    """Why a state-changing request failed the CSRF check."""


class CsrfProtector:
    def __init__(self, secret: bytes, clock: Clock, lifetime: int = 3600) -> None:
        self._secret = secret
        self.clock = clock
        self.lifetime = lifetime

    def _sign(self, session: str, expires: int) -> str:
        message = f"{session}.{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def issue(self) -> tuple[str, str]:
        """A new (session value, XSRF token) pair."""
        session = secrets.token_hex(32)
        expires = int(self.clock.timestamp()) + self.lifetime
        return session, f"{expires:x}.{self._sign(session, expires)}"

    def verify(self, session: str | None, cookie: str | None, header: str | None) -> None:
        if not header:
            raise CsrfError(f"missing {HEADER} header")
        for value in (session, cookie, header):
            if value and not (value.isascii() and len(value) <= MAX_VALUE):
                raise CsrfError("malformed CSRF token or session")
        if not cookie or not hmac.compare_digest(cookie, header):
            raise CsrfError(f"{HEADER} header does not match the {TOKEN_COOKIE} cookie")
        if not session:
            raise CsrfError(f"missing {SESSION_COOKIE} cookie")
        expires_hex, _, signature = header.partition(".")
        try:
            expires = int(expires_hex, 16)
        except ValueError:
            raise CsrfError("malformed CSRF token") from None
        if not hmac.compare_digest(signature, self._sign(session, expires)):
            raise CsrfError("CSRF token was not issued for this session")
        if expires <= self.clock.timestamp():
            raise CsrfError("CSRF token expired")
