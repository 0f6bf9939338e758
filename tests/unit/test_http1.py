"""The lean HTTP/1.1 pool against a real local HTTP server (aiohttp.web): bodies of both
framings, HEAD, keep-alive reuse, a connection the server dropped, size guard, timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bucketjobs.storage.http1 import BodyTooLarge, Http1Pool


async def _chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"X-Kind": "chunked"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for part in (b"ab", b"c" * 70_000, b"d"):
        await response.write(part)
    await response.write_eof()
    return response


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.Response(
        body=body, headers={"X-Length": request.headers.get("Content-Length", "-"),
                            "X-Peer": str(request.transport.get_extra_info("peername"))},
    )  # fmt: skip


async def _head(request: web.Request) -> web.Response:
    return web.Response(headers={"Content-Length": "12345", "ETag": '"e"'})


async def _close(request: web.Request) -> web.Response:
    return web.Response(body=b"bye", headers={"Connection": "close"})


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(2)
    return web.Response(body=b"late")


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, int]]:
    app = web.Application()
    app.router.add_get("/chunked", _chunked)
    app.router.add_route("*", "/echo", _echo)
    app.router.add_head("/head", _head)
    app.router.add_get("/close", _close)
    app.router.add_get("/slow", _slow)
    runner = web.AppRunner(app, keepalive_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield "127.0.0.1", port
    await runner.cleanup()


def _headers(host: str, port: int) -> dict[str, str]:
    return {"host": f"{host}:{port}"}


async def test_bodies_of_both_framings_and_head(server):
    host, port = server
    pool = Http1Pool("http", host, port, 4)
    try:
        status, headers, body = await pool.request("GET", "/chunked", _headers(host, port))
        assert (status, headers["x-kind"], body) == (200, "chunked", b"ab" + b"c" * 70_000 + b"d")
        payload = bytes(range(256)) * 1000
        status, headers, body = await pool.request("PUT", "/echo", _headers(host, port), payload)
        assert body == payload and headers["X-Length"] == str(len(payload))
        status, headers, body = await pool.request("PUT", "/echo", _headers(host, port))
        assert headers["X-Length"] == "0" and body == b""
        # HEAD announces a length it does not send; the next answer on the socket is intact.
        status, headers, body = await pool.request("HEAD", "/head", _headers(host, port))
        assert (status, headers["Content-Length"], body) == (200, "12345", b"")
        _, _, body = await pool.request("PUT", "/echo", _headers(host, port), b"after head")
        assert body == b"after head"
    finally:
        await pool.close()


async def test_keep_alive_reuse_and_a_connection_the_server_dropped(server):
    host, port = server
    pool = Http1Pool("http", host, port, 1)
    try:
        peers = {(await pool.request("GET", "/echo", _headers(host, port)))[1]["X-Peer"]
                 for _ in range(5)}  # fmt: skip
        assert len(peers) == 1, "one kept connection served every request"
        await asyncio.sleep(1.0)  # the server's keep-alive timeout closes it meanwhile
        _, headers, _ = await pool.request("GET", "/echo", _headers(host, port))
        assert headers["X-Peer"] not in peers
        _, _, body = await pool.request("GET", "/close", _headers(host, port))
        assert body == b"bye"
        assert (await pool.request("GET", "/echo", _headers(host, port)))[0] == 200
    finally:
        await pool.close()


async def test_size_guard_and_timeout(server):
    host, port = server
    pool = Http1Pool("http", host, port, 2, read_timeout=0.3)
    try:
        with pytest.raises(BodyTooLarge) as too_large:
            await pool.request("PUT", "/echo", _headers(host, port), b"x" * 5000, max_body=4096)
        assert too_large.value.length == 5000
        with pytest.raises(TimeoutError):
            await pool.request("GET", "/slow", _headers(host, port))
        assert (await pool.request("GET", "/echo", _headers(host, port)))[0] == 200
    finally:
        await pool.close()


async def test_refused_connection_is_a_connection_error():
    pool = Http1Pool("http", "127.0.0.1", 9, 1)  # the discard port: nothing listens
    with pytest.raises(ConnectionError):
        await pool.request("GET", "/", {"host": "127.0.0.1:9"})
