"""Signed JWT access and refresh tokens (RS256, key kept in the data directory)."""

from __future__ import annotations

import functools
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from bucketjobs.clock import Clock

ALGORITHM = "RS256"
VERIFIED_TOKENS = 4096  # verified tokens remembered per API process (~1 KiB each)


class InvalidToken(Exception):
    """Missing, malformed, expired, wrongly signed or of the wrong kind."""


def load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    """The signing key: created once with mode 0600; every API process of a host shares it."""
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process won the race; read its key below
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
            return key
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return loaded


@dataclass(frozen=True)
class Session:
    """Whom a token speaks for, and the login (refresh family) it belongs to.

    `generation` is the user's token generation when it was issued (a password change moves
    it on); `refresh_id` names the one refresh token of the family that is valid now.
    """

    user_id: int
    username: str
    session_id: str
    generation: int
    refresh_id: str = ""


class TokenIssuer:
    def __init__(
        self,
        key: rsa.RSAPrivateKey,
        issuer: str,
        clock: Clock,
        access_ttl: int = 300,
        refresh_ttl: int = 1800,
    ) -> None:
        self._key = key
        self._public = key.public_key()
        self.issuer = issuer
        self.clock = clock
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        jwk = json.loads(RSAAlgorithm.to_jwk(self._public))
        self.kid = jwk["n"][:16]
        self._jwk = {**jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}
        # A client polls with the same token for minutes: its signature is checked once.
        # Only tokens that verified are kept (an error is not cached), and expiry is checked
        # on every use. Decoding and the RSA check cost ~0.15 ms a request otherwise.
        self._verified = functools.lru_cache(maxsize=VERIFIED_TOKENS)(self._signed_claims)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._jwk]}

    def _sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})

    def issue(self, session: Session) -> dict[str, Any]:
        """The OAuth2 token response body for a successful grant."""
        now = int(self.clock.timestamp())
        base = {
            "iss": self.issuer,
            "sub": str(session.user_id),
            "iat": now,
            "sid": session.session_id,
            "gen": session.generation,
        }
        access = self._sign(
            {
                **base,
                "jti": secrets.token_hex(8),
                "exp": now + self.access_ttl,
                "typ": "Bearer",
                "preferred_username": session.username,
                "mapi_user_id": session.user_id,
            }
        )
        refresh = self._sign(
            {**base, "jti": session.refresh_id, "exp": now + self.refresh_ttl, "typ": "Refresh"}
        )
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_ttl,
            "refresh_token": refresh,
            "refresh_expires_in": self.refresh_ttl,
            "scope": "openid profile",
        }

    def _signed_claims(self, token: str) -> dict[str, Any]:
        """The claims of a token this issuer signed (expiry is checked by the caller)."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                options={
                    "require": ["exp", "iat", "sub", "iss"],
                    "verify_exp": False,  # checked in _decode against the injected clock
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        return claims

    def _decode(self, token: str, kind: str) -> dict[str, Any]:
        claims = self._verified(token)
        if claims.get("typ") != kind:
            raise InvalidToken(f"not a {kind} token")
        if int(claims["exp"]) <= self.clock.timestamp():
            raise InvalidToken("token expired")
        return claims

    def verify_access(self, token: str) -> Session:
        claims = self._decode(token, "Bearer")
        return self._session(claims, str(claims.get("preferred_username", "")), "")

    def verify_refresh(self, token: str) -> Session:
        claims = self._decode(token, "Refresh")
        return self._session(claims, "", str(claims.get("jti", "")))

    @staticmethod
    def _session(claims: dict[str, Any], username: str, refresh_id: str) -> Session:
        try:
            return Session(
                int(claims["sub"]),
                username,
                str(claims["sid"]),
                int(claims["gen"]),
                refresh_id,
            )
        except (KeyError, TypeError, ValueError):
            raise InvalidToken("token lacks its session claims") from None
