"""A lean keep-alive HTTP/1.1 client for S3 requests whose bodies fit in memory.

Why by hand: copying small objects is one request each, and the client's work per request
is what is left to win on a host where the store itself is busy (docs/PERFORMANCE.md).
aiohttp spends ~0.2 ms of CPU on a CopyObject; this spends ~0.1 ms, and pyreqwest (Rust)
was measured at ~0.18. It does only what an S3 endpoint needs: one request at a time per
connection, bodies sent from bytes, answers read whole (listing pages, copy results, small
objects; `max_body` guards the last), Content-Length or chunked. Parsing is httptools'
(llhttp, the parser of Node.js); only the pool and the request line are written here.
Streams (large objects) stay on aiohttp (storage/http.py).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque

import httptools
from multidict import CIMultiDict

IDLE_SECONDS = 20.0  # a kept connection idle longer may have been closed by the server


class BodyTooLarge(Exception):
    """The answer's Content-Length is above the caller's `max_body`; nothing was read."""

    def __init__(self, length: int) -> None:
        super().__init__(f"answer of {length} bytes")
        self.length = length


class _Connection(asyncio.Protocol):
    """One socket; answers are parsed as they arrive and handed to the waiting request."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bool]] | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.head = False  # the request was a HEAD: its answer has no body to wait for
        self.max_body: int | None = None
        self.received = False
        self.closed = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionResetError(f"malformed HTTP answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionResetError("the server closed the connection"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.head:
            # llhttp cannot be told the request was a HEAD and would wait for the body its
            # Content-Length announces: end here and give the next answer a fresh parser.
            status = self.parser.get_status_code()
            self.parser = httptools.HttpResponseParser(self)
            self._done(status, keep=True)
            return
        if self.max_body is not None:
            length = next((v for k, v in self.headers if k.lower() == b"content-length"), None)
            if length is not None and int(length) > self.max_body:
                self._fail(BodyTooLarge(int(length)))  # and close: the body is not read

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self._done(self.parser.get_status_code(), self.parser.should_keep_alive())

    def _done(self, status: int, keep: bool) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((status, keep))

    def _fail(self, exc: BaseException) -> None:
        self.closed = True
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()


Answer = tuple[int, CIMultiDict[str], bytes]


class Http1Pool:
    """Up to `limit` keep-alive connections to one `scheme://host:port`."""

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        limit: int,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.host, self.port = host, port
        self.ssl = ssl.create_default_context() if scheme == "https" else None
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: deque[_Connection] = deque()
        self._slots = asyncio.Semaphore(limit)
        self._open: set[_Connection] = set()

    async def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes = b"",
        *,
        max_body: int | None = None,
    ) -> Answer:
        """Send one request (`target` already encoded; `headers`, lower-case, include Host) and read
        its whole answer. A kept connection the server has closed meanwhile is replaced
        once, unless the request could have been acted on (a POST)."""
        async with self._slots:
            conn, reused = await self._connection()
            try:
                return await self._exchange(conn, method, target, headers, body, max_body)
            except ConnectionError:
                if not reused or conn.received or method == "POST":
                    raise
            conn, _ = await self._connection(fresh=True)
            return await self._exchange(conn, method, target, headers, body, max_body)

    async def _connection(self, *, fresh: bool = False) -> tuple[_Connection, bool]:
        now = time.monotonic()
        while self._idle and not fresh:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_SECONDS:
                return conn, True
            self._close(conn)
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(_Connection, self.host, self.port, ssl=self.ssl),
                self.connect_timeout,
            )
        except OSError as exc:
            if isinstance(exc, ConnectionError):
                raise
            message = f"cannot connect to {self.host}:{self.port}: {exc}"
            raise ConnectionRefusedError(message) from exc
        self._open.add(conn)
        return conn, False

    async def _exchange(
        self,
        conn: _Connection,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        max_body: int | None,
    ) -> Answer:
        loop = asyncio.get_running_loop()
        conn.headers, conn.body, conn.received = [], [], False
        conn.head, conn.max_body = method == "HEAD", max_body
        waiter = conn.waiter = loop.create_future()
        lines = [f"{method} {target} HTTP/1.1\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in headers.items()]
        if "content-length" not in headers and (body or method in _BODY):
            lines.append(f"content-length: {len(body)}\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode()
        assert conn.transport is not None
        if len(body) <= 65536:
            conn.transport.write(head + body)
        else:
            conn.transport.writelines((head, body))
        timer = loop.call_later(self.read_timeout, _time_out, conn)
        try:
            status, keep = await waiter
        except BaseException:
            self._close(conn)
            raise
        finally:
            timer.cancel()
        answer_headers = CIMultiDict(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in conn.headers
        )
        answer = b"".join(conn.body) if len(conn.body) != 1 else conn.body[0]
        conn.body = []
        if keep and not conn.closed:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            self._close(conn)
        return status, answer_headers, answer

    def _close(self, conn: _Connection) -> None:
        self._open.discard(conn)
        if conn.transport is not None and not conn.transport.is_closing():
            conn.transport.close()

    async def close(self) -> None:
        for conn in list(self._open):
            self._close(conn)
        self._idle.clear()


_BODY = frozenset({"PUT", "POST"})  # methods that announce a length even when empty


def _time_out(conn: _Connection) -> None:
    conn._fail(TimeoutError("no answer within the socket timeout"))
