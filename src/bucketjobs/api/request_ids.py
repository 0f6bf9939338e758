"""A request id on every API log line and answer (`X-Request-ID`): the client's own when it
sends a sane one (1 to 64 of `A-Z a-z 0-9 . _ -`), else a new one. A plain ASGI wrapper: a
few microseconds a request, where Starlette's BaseHTTPMiddleware costs a task."""

from __future__ import annotations

import re
import secrets
from typing import Any

import structlog

HEADER = b"x-request-id"
_SANE = re.compile(rb"[A-Za-z0-9._-]{1,64}")


class RequestIds:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == HEADER), b"")
        rid = given.decode() if _SANE.fullmatch(given) else secrets.token_hex(8)
        tokens = structlog.contextvars.bind_contextvars(request_id=rid)

        async def answer(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (HEADER, rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, answer)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)
