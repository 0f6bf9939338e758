"""A lean keep-alive HTTP/1.1 client for S3 requests whose bodies fit in memory.

Why by hand: copying small objects is one request each, and the client's work per request
is what is left to win on a host where the store itself is busy (docs/PERFORMANCE.md).
aiohttp spends ~0.2 ms of CPU on a CopyObject; this spends ~0.1 ms, and pyreqwest (Rust)
was measured at ~0.18. It does only what an S3 endpoint needs: one request at a time per
connection, bodies sent from bytes, answers read whole (listing pages, copy results, small
objects; `max_body` guards the last), Content-Length or chunked. Parsing is httptools'
(llhttp, the parser of Node.js); only the pool and the request line are written here.
Streams (large objects) stay on aiohttp (storage/http.py). tests/integration/
test_http_differential.py holds it to aiohttp's and botocore's answers.

Framing rules it keeps:
- Header values are UTF-8 both ways (surrogateescape: bytes that are not UTF-8 come back
  out exactly as they came in), as aiohttp reads them and as SigV4 hashes them.
- Content-Length is always computed from the body, never taken from the caller.
- 1xx interim answers (100 Continue) are skipped; the final answer is the one returned.
- `max_body` bounds Content-Length and chunked bodies alike.
- The read timeout is per read: a slow but moving answer is not cut off.
- A kept connection that receives bytes nobody asked for is closed, never reused.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque

import httptools
from multidict import CIMultiDict

from bucketjobs.storage.errors import (
    AnswerTooLarge,
    ConnectFailed,
    ProtocolError,
    StorageError,
    TimedOut,
)

IDLE_SECONDS = 20.0  # a kept connection idle longer may have been closed by the server
CODEC = "utf-8"
ESCAPE = "surrogateescape"


class _Dropped(ProtocolError):
    """The connection closed before any byte of the answer: a kept connection the server
    had closed meanwhile, which may be retried on a fresh one."""


class _Connection(asyncio.Protocol):
    """One socket; answers are parsed as they arrive and handed to the waiting request."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bool]] | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_size = 0
        self.head = False  # the request was a HEAD: its answer has no body to wait for
        self.max_body: int | None = None
        self.received = False
        self.last_read = 0.0
        self.closed = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:
            self._fail(ProtocolError("bytes arrived on an idle connection"))
            return
        self.received = True
        self.last_read = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"malformed HTTP answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.received:
            self._fail(ProtocolError(f"the connection closed mid-answer: {exc or 'EOF'}"))
        else:
            self._fail(_Dropped(f"the server closed the connection: {exc or 'EOF'}"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self.waiter is None:  # a second answer in the same read: nobody asked for it
            self.closed = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            return  # interim: its message ends at once, the final answer follows
        if self.head:
            # llhttp cannot be told the request was a HEAD and would wait for the body its
            # Content-Length announces: end here and give the next answer a fresh parser.
            self.parser = httptools.HttpResponseParser(self)
            self._done(status, keep=True)
            return
        if self.max_body is not None:
            length = next((v for k, v in self.headers if k.lower() == b"content-length"), None)
            if length is not None and int(length) > self.max_body:
                self._fail(AnswerTooLarge(int(length), self.max_body))  # the body is not read

    def on_body(self, body: bytes) -> None:
        if self.waiter is None:
            self.closed = True
            return
        self.body_size += len(body)
        if self.max_body is not None and self.body_size > self.max_body:
            self._fail(AnswerTooLarge(self.body_size, self.max_body))
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.headers, self.body, self.body_size = [], [], 0
            return
        self._done(status, self.parser.should_keep_alive())

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
    """Up to `limit` keep-alive connections to one `host:port` (TLS when `tls` is given)."""

    def __init__(
        self,
        host: str,
        port: int,
        limit: int,
        *,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.host, self.port = host, port
        self.ssl = tls
        self.server_hostname = server_hostname if tls is not None else None
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
        """Send one request (`target` already encoded; `headers`, lower-case, include Host)
        and read its whole answer. A kept connection the server has closed meanwhile is
        replaced once, unless the request could have been acted on (a POST)."""
        async with self._slots:
            conn, reused = await self._connection()
            try:
                return await self._exchange(conn, method, target, headers, body, max_body)
            except _Dropped:
                if not reused or method == "POST":
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
        where = f"{self.host}:{self.port}"
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    _Connection, self.host, self.port, ssl=self.ssl,
                    server_hostname=self.server_hostname,
                ),
                self.connect_timeout,
            )  # fmt: skip
        except ssl.SSLCertVerificationError as exc:
            # Retrying cannot help: the certificate is not one this component trusts.
            raise StorageError("TlsError", f"{where}: {exc.verify_message or exc}") from exc
        except TimeoutError as exc:
            raise TimedOut(f"no connection to {where} in {self.connect_timeout:g} s") from exc
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {where}: {exc}") from exc
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
        conn.headers, conn.body, conn.body_size, conn.received = [], [], 0, False
        conn.head, conn.max_body = method == "HEAD", max_body
        conn.last_read = time.monotonic()
        waiter = conn.waiter = loop.create_future()
        lines = [f"{method} {target} HTTP/1.1\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in headers.items() if name != _LENGTH]
        if body or method in _BODY:
            lines.append(f"content-length: {len(body)}\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode(CODEC, ESCAPE)
        assert conn.transport is not None
        if len(body) <= 65536:
            conn.transport.write(head + body)
        else:
            conn.transport.writelines((head, body))
        timer = loop.call_later(self.read_timeout, self._check_timeout, conn)
        try:
            status, keep = await waiter
        except BaseException:
            self._close(conn)
            raise
        finally:
            timer.cancel()
        answer_headers = CIMultiDict(
            (name.decode(CODEC, ESCAPE), value.decode(CODEC, ESCAPE))
            for name, value in conn.headers
        )
        answer = b"".join(conn.body) if len(conn.body) != 1 else conn.body[0]
        conn.body = []
        if keep and not conn.closed:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            self._close(conn)
        return status, answer_headers, answer

    def _check_timeout(self, conn: _Connection) -> None:
        """Fail the request if nothing arrived for `read_timeout`; else look again then."""
        if conn.waiter is None:
            return
        quiet = time.monotonic() - conn.last_read
        if quiet >= self.read_timeout:
            conn._fail(TimedOut(f"no answer from {self.host}:{self.port} in {quiet:.0f} s"))
        else:
            timer = asyncio.get_running_loop().call_later(
                self.read_timeout - quiet, self._check_timeout, conn
            )
            conn.waiter.add_done_callback(lambda _: timer.cancel())

    def _close(self, conn: _Connection) -> None:
        self._open.discard(conn)
        if conn.transport is not None and not conn.transport.is_closing():
            conn.transport.close()

    async def close(self) -> None:
        for conn in list(self._open):
            self._close(conn)
        self._idle.clear()


_BODY = frozenset({"PUT", "POST"})  # methods that announce a length even when empty
_LENGTH = "content-length"
