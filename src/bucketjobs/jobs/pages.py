"""Opaque, tamper-evident keyset page tokens.

The token carries the (created_at, id) of the last job shown and a digest of the filters,
signed with the installation's page secret: it survives restarts, works on any API process,
and a token edited by hand or reused with other filters is rejected.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from typing import Any


class BadPageToken(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def filters_digest(filters: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(filters, sort_keys=True).encode()).hexdigest()[:16]


class PageTokens:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, payload: bytes) -> str:
        return _b64(hmac.new(self._secret, payload, hashlib.sha256).digest()[:16])

    def encode(self, position: tuple[Any, ...], filters: dict[str, Any]) -> str:
        values = [v.isoformat() if isinstance(v, dt.datetime) else v for v in position]
        payload = json.dumps({"p": values, "f": filters_digest(filters)}).encode()
        return f"{_b64(payload)}.{self._mac(payload)}"

    def decode(self, token: str, filters: dict[str, Any]) -> list[Any]:
        """The position after which the next page starts; raises BadPageToken."""
        body, _, mac = token.partition(".")
        try:
            payload = _unb64(body)
        except (ValueError, UnicodeError):
            raise BadPageToken("pageToken is malformed") from None
        if not mac or not hmac.compare_digest(mac, self._mac(payload)):
            raise BadPageToken("pageToken is invalid or was altered")
        data = json.loads(payload)
        if data.get("f") != filters_digest(filters):
            raise BadPageToken("pageToken belongs to a listing with other filters")
        return list(data["p"])
