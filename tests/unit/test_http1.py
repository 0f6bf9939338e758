"""The lean HTTP/1.1 pool against a real local HTTP server (aiohttp.web): bodies of both
framings, HEAD, keep-alive reuse, a connection the server dropped, size guard, timeout —
and, against a scripted raw socket server, the framing cases a polite server never sends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from bucketjobs.storage.errors import AnswerTooLarge, ConnectFailed, TimedOut
from bucketjobs.storage.http1 import Http1Pool


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
    pool = Http1Pool(host, port, 4)
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
    pool = Http1Pool(host, port, 1)
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
    pool = Http1Pool(host, port, 2, read_timeout=0.3)
    try:
        with pytest.raises(AnswerTooLarge) as too_large:
            await pool.request("PUT", "/echo", _headers(host, port), b"x" * 5000, max_body=4096)
        assert too_large.value.length == 5000
        with pytest.raises(TimedOut):
            await pool.request("GET", "/slow", _headers(host, port))
        assert (await pool.request("GET", "/echo", _headers(host, port)))[0] == 200
    finally:
        await pool.close()


async def test_refused_connection_is_a_connect_error():
    pool = Http1Pool("127.0.0.1", 9, 1)  # the discard port: nothing listens
    with pytest.raises(ConnectFailed):
        await pool.request("GET", "/", {"host": "127.0.0.1:9"})


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(script: Script) -> AsyncIterator[Http1Pool]:
    """A socket server that answers every connection with `script`, and a pool to it."""
    server = await asyncio.start_server(script, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = Http1Pool("127.0.0.1", port, 1, read_timeout=0.5)
    try:
        yield pool
    finally:
        await pool.close()
        server.close()
        await server.wait_closed()


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


async def test_interim_100_continue_is_skipped():
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await _read_head(reader)
            writer.write(b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Final: 1\r\n\r\nbody")
            await writer.drain()

    async with raw_server(script) as pool:
        for _ in range(2):  # and the connection stays usable
            status, headers, body = await pool.request("GET", "/", {"host": "h"})
            assert (status, body, headers.get("x-final"), "x-interim" in headers) == (
                200, b"body", "1", False,
            )  # fmt: skip


async def test_content_length_is_computed_from_the_body_never_taken_from_the_caller():
    seen: list[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await _read_head(reader)
        seen.append(head)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        seen.append(await reader.readexactly(length))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async with raw_server(script) as pool:
        await pool.request("PUT", "/", {"host": "h", "content-length": "0"}, b"12345")
    assert seen[0].lower().count(b"content-length") == 1
    assert seen[1] == b"12345"


async def test_max_body_bounds_a_chunked_answer():
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(10):
            writer.write(b"400\r\n" + b"x" * 1024 + b"\r\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with raw_server(script) as pool:
        with pytest.raises(AnswerTooLarge):
            await pool.request("GET", "/", {"host": "h"}, max_body=4096)


async def test_read_timeout_is_per_read_not_for_the_whole_answer():
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n")
        for byte in b"abcdef":  # 6 x 0.2 s = 1.2 s in all, more than the 0.5 s timeout
            await asyncio.sleep(0.2)
            writer.write(bytes([byte]))
            await writer.drain()

    async with raw_server(script) as pool:
        assert (await pool.request("GET", "/", {"host": "h"}))[2] == b"abcdef"


async def test_a_kept_connection_that_received_unasked_bytes_is_not_reused():
    connections = 0

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        mine = connections
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                await _read_head(reader)
                body = f"conn{mine}".encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + body)
                # garbage nobody asked for: a broken server or a desynchronised stream
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale")
                await writer.drain()

    async with raw_server(script) as pool:
        first = (await pool.request("GET", "/", {"host": "h"}))[2]
        await asyncio.sleep(0.1)
        second = (await pool.request("GET", "/", {"host": "h"}))[2]
    assert (first, second) == (b"conn1", b"conn2"), "the stale answer must never be read"
