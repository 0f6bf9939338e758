"""An S3 fault-injecting proxy for tests: sits in front of SeaweedFS and, on a chosen share
of requests, answers 503 SlowDown or 500 InternalError, resets the connection, or adds
latency; chosen keys can be made to fail permanently (403/404).

The client's Host header is passed through unchanged, so SigV4 signatures made for the
proxy's address still verify at the store.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

import aiohttp
from aiohttp import web
from yarl import URL

SLOW_DOWN = (503, "SlowDown", "Please reduce your request rate.")
INTERNAL = (500, "InternalError", "We encountered an internal error. Please try again.")
HOP_HEADERS = {"transfer-encoding", "connection", "keep-alive", "content-length"}


def _error(status: int, code: str, message: str) -> web.Response:
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return web.Response(status=status, body=body.encode(), content_type="application/xml")


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        *,
        transient_rate: float = 0.0,
        latency: float = 0.0,
        permanent: dict[str, int] | None = None,
        seed: int = 0,
        chunked: bool = False,
        refuse: Callable[[web.Request], Awaitable[bool]] | None = None,
    ) -> None:
        """`chunked` re-frames every answer body as chunked transfer encoding, as some
        gateways in front of S3 do. `refuse` sees each request first: True answers it
        503 SlowDown (a test's own choice of which requests fail)."""
        self.chunked = chunked
        self.refuse = refuse
        self.upstream = upstream.rstrip("/")
        self.transient_rate = transient_rate
        self.latency = latency
        self.permanent = permanent or {}
        self.random = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> str:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.refuse is not None and await self.refuse(request):
            self.injected["refused"] += 1
            return _error(*SLOW_DOWN)
        key = unquote(request.path).split("/", 2)[-1]
        if key in self.permanent:
            self.injected["permanent"] += 1
            status = self.permanent[key]
            code = "AccessDenied" if status == 403 else "NoSuchKey"
            return _error(status, code, "injected")
        roll = self.random.random()
        if roll < self.transient_rate:
            kind = self.random.choice(("slowdown", "internal", "reset"))
            self.injected[kind] += 1
            if kind == "reset":
                assert request.transport is not None
                request.transport.abort()
                return web.Response(status=500)
            return _error(*(SLOW_DOWN if kind == "slowdown" else INTERNAL))
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with self._session.request(
            request.method,
            URL(self.upstream + request.raw_path, encoded=True),  # the target byte for byte
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as upstream:
            body = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
            if request.method == "HEAD":  # the length of the object, not of this empty answer
                out["Content-Length"] = upstream.headers.get("Content-Length", "0")
                response = web.StreamResponse(status=upstream.status, headers=out)
                await response.prepare(request)
                return response
            if not self.chunked:
                return web.Response(status=upstream.status, body=body, headers=out)
            streamed = web.StreamResponse(status=upstream.status, headers=out)
            streamed.enable_chunked_encoding()
            await streamed.prepare(request)
            for start in range(0, len(body), 1000):
                await streamed.write(body[start : start + 1000])
            await streamed.write_eof()
            return streamed
