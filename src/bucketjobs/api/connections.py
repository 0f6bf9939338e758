"""Connection limits the ASGI server lacks: a header deadline, caps per address and in total.

uvicorn (0.54) times out idle keep-alive connections but not a request whose headers never
finish, and has no cap on connections: 3,000 clients sending partial headers stayed open
forever and 20,000 exhausted the process's file descriptors. This is uvicorn's own httptools
protocol with four rules added — no other part of request handling is touched:

- a request's headers must be complete within `header_timeout` seconds of its first byte
  (or of the connection, for the first request), else the connection is closed;
- headers are at most `max_header_bytes`, else 431 and close;
- one client address holds at most `per_address` connections; more are refused at once;
- at most `total` connections are open; at the cap, the oldest connection still waiting
  for headers is closed to admit the new one, so a flood of slow clients cannot keep a real
  client (who sends its headers at once) out;
- an answer that starts before its request's body has all arrived (413 for a body declared
  too large, 401 or 503 before reading it) says `connection: close`, and is followed by a
  *lingering close*: the rest of the body is read and thrown away for at most
  LINGER_SECONDS, then the connection closes. Closing at once would make the kernel reset
  the connection over the unread bytes, and the client would see a reset instead of the
  answer; going on as keep-alive would read a body of any declared size, for as long as
  the client dribbles it. Without the header a keep-alive client sent its next request
  into the lingering connection and lost it (seen: a 503 during a database outage).

Written by hand, small, on purpose: uvicorn has no such settings, and a subclass keeps the
rest of the server stack the one every other benchmark here measures. Moving to another ASGI
server (hypercorn, granian) was not tried; bench/abuse.py measures this one under floods.
"""

from __future__ import annotations

import asyncio
import resource
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

LINGER_SECONDS = 2.0


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024
    per_address: int = 1024
    total: int = 0  # 0: what the file-descriptor limit allows, less a reserve

    def resolved_total(self) -> int:
        if self.total:
            return self.total
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        return max(64, soft - 256)  # the database pool, S3 clients and logs need some


class _Book:
    """The open connections of one server: counts per address, and who awaits headers."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.total = limits.resolved_total()
        self.by_address: Counter[str] = Counter()
        self.open = 0
        self.pending: OrderedDict[GuardedProtocol, None] = OrderedDict()
        self.refused = 0
        self.evicted = 0


def guarded_protocol(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """uvicorn's `http=` class enforcing `limits` for one server."""
    book = _Book(limits)
    return type("GuardedProtocol", (GuardedProtocol,), {"book": book})


class GuardedProtocol(HttpToolsProtocol):
    book: _Book

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._admitted = False
        self._address = ""
        self._deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._lingering = False
        self._closing = False  # an answer said `connection: close`

    # -- connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        book = self.book
        peer = transport.get_extra_info("peername")
        self._address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if book.by_address[self._address] >= book.limits.per_address:
            book.refused += 1
            transport.abort()
            return
        if book.open >= book.total:
            if not book.pending:
                book.refused += 1
                transport.abort()
                return
            oldest, _ = book.pending.popitem(last=False)
            book.evicted += 1
            oldest.transport.abort()
        self._admitted = True
        book.open += 1
        book.by_address[self._address] += 1
        super().connection_made(transport)
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self._headers_done()
        book = self.book
        book.open -= 1
        book.by_address[self._address] -= 1
        if book.by_address[self._address] <= 0:
            del book.by_address[self._address]
        super().connection_lost(exc)

    # -- answered before the body was read -------------------------------------------------

    def _watch_early_answer(self) -> None:
        """Make the cycle's answer say `connection: close` if it starts before the request's
        body has all arrived (the connection will linger, then close: see the module)."""
        cycle = self.cycle
        if cycle is None:
            return
        send = cycle.send

        async def send_closing(message: Any) -> None:
            if message["type"] == "http.response.start" and cycle.more_body:
                closing: Any = {**message, "headers": [*message.get("headers", ()),
                                                        (b"connection", b"close")]}  # fmt: skip
                await send(closing)
                # uvicorn would now close at the answer's end, over the unread body; the
                # lingering close in on_response_complete ends the connection instead.
                cycle.keep_alive = True
                self._closing = True
                return
            await send(message)

        cycle.send = send_closing  # type: ignore[method-assign]

    def on_response_complete(self) -> None:
        unread = self.cycle is not None and self.cycle.more_body
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if unread:
            self._linger()
        elif self._closing:  # the body arrived after all: nothing unread, close now
            self.transport.close()

    def _linger(self) -> None:
        self._lingering = True
        self._headers_done()
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the answer is all there is: the client sees its end
        self.loop.call_later(LINGER_SECONDS, self._end_linger)

    def _end_linger(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    # -- headers -------------------------------------------------------------------------

    def _await_headers(self) -> None:
        if self._deadline is None:
            self._header_bytes = 0
            self._deadline = self.loop.call_later(self.book.limits.header_timeout, self._late)
            self.book.pending[self] = None

    def _headers_done(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.book.pending.pop(self, None)

    def _late(self) -> None:
        self._deadline = None
        self.book.pending.pop(self, None)
        if not self.transport.is_closing():
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the rest of a body answered already: thrown away
        if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._await_headers()  # a new request on a kept-alive connection
        pending = self._deadline is not None
        super().data_received(data)
        if pending and self._deadline is not None:  # headers still incomplete
            self._header_bytes += len(data)
            if self._header_bytes > self.book.limits.max_header_bytes:
                self._refuse_headers()

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._headers_done()
        if self._header_bytes > self.book.limits.max_header_bytes:
            self._refuse_headers()
            return
        super().on_headers_complete()
        self._watch_early_answer()

    def _refuse_headers(self) -> None:
        self._headers_done()
        if not self.transport.is_closing():
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-length: 0\r\nconnection: close\r\n\r\n"
            )
            self.transport.close()
