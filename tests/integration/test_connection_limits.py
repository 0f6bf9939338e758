"""Slow and greedy clients (issue 10 §2): headers have a deadline, connections are capped per
address and in total, bodies are counted as they stream — and a real client is answered
throughout. Attackers connect from other loopback addresses (127.0.0.2, ...)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.stack import private_api

HEADER_TIMEOUT = 1.0
PER_ADDRESS = 40
TOTAL = 100


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, store, postgres_url) -> Iterator[tuple[str, int]]:
    options = ("--header-timeout", str(HEADER_TIMEOUT), "--max-connections", str(TOTAL),
               "--max-connections-per-address", str(PER_ADDRESS))  # fmt: skip
    with private_api(tmp_path_factory.mktemp("guarded"), store, postgres_url, *options) as (
        url,
        api,
    ):
        yield url, api


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _slow(port: int, source: str, count: int) -> list[socket.socket]:
    """`count` connections from `source` that send half a request line and stop."""
    opened = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        opened.append(sock)
    return opened


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0.05)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def _answered_at_once(url: str) -> None:
    """A real client (127.0.0.1) is answered within a second."""
    started = time.monotonic()
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    assert time.monotonic() - started < 1.0


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_headers_have_a_deadline(guarded):
    url, _ = guarded
    socks = _slow(_port(url), "127.0.0.2", 10)
    try:
        time.sleep(HEADER_TIMEOUT + 1.0)
        assert all(_closed_by_server(s) for s in socks)
    finally:
        for sock in socks:
            sock.close()


def test_one_address_is_capped_and_a_real_client_still_answered(guarded):
    url, _ = guarded
    socks = _slow(_port(url), "127.0.0.3", PER_ADDRESS + 10)
    try:
        time.sleep(0.2)
        refused = sum(_closed_by_server(s) for s in socks)
        assert refused >= 10
        _answered_at_once(url)
    finally:
        for sock in socks:
            sock.close()


def test_at_the_total_cap_slow_clients_make_room_for_real_ones(guarded):
    url, _ = guarded
    socks = []
    try:
        for i in range(4, 4 + TOTAL // PER_ADDRESS + 1):  # more than TOTAL, from 3 addresses
            socks += _slow(_port(url), f"127.0.0.{i}", PER_ADDRESS)
        for _ in range(5):
            _answered_at_once(url)
    finally:
        for sock in socks:
            sock.close()


def test_oversized_headers_are_refused(guarded):
    url, api = guarded
    big = {"X-Big": "a" * 100_000}
    assert httpx.get(f"{url}/healthz", headers=big, timeout=5).status_code == 431
    with_body = httpx.post(f"{url}/mapi/v1/jobs/list", headers=big, content=b"{}" * 50_000)
    assert with_body.status_code == 431
    assert "Traceback" not in api.log.read_text()


@pytest.mark.parametrize("path", ["/ui/auth/realms/vsp-object/protocol/openid-connect/token",
                                  "/mapi/v1/jobs/create", "/healthz"])  # fmt: skip
def test_a_huge_unauthenticated_body_is_not_read(guarded, path):
    """200 MB sent chunked (no length to refuse up front): the server answers and stops
    reading; its memory does not grow with what the client sends."""
    url, api = guarded
    pid = api.proc.pid
    before = _rss_kib(pid)
    sock = socket.create_connection(("127.0.0.1", _port(url)), timeout=10)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                 "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode())  # fmt: skip
    chunk = b"%x\r\n%s\r\n" % (1 << 20, b"a" * (1 << 20))
    sent = 0
    try:
        for _ in range(200):
            sock.sendall(chunk)
            sent += 1
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass  # the server stopped reading: the point
    sock.settimeout(5)
    try:
        answer = sock.recv(200)
    except (ConnectionResetError, TimeoutError):
        answer = b""
    sock.close()
    grown = _rss_kib(pid) - before
    assert grown < 40 * 1024, f"API grew {grown} KiB after {sent} MiB sent; answer {answer!r}"
    assert answer == b"" or answer.split(b" ")[1] in (b"401", b"405", b"413")
    assert "Traceback" not in api.log.read_text()


def test_an_answer_before_the_body_reaches_the_client_intact(guarded):
    """A body declared too large is answered 413 before the client has sent it; the server
    then takes the rest in and throws it away (a lingering close), so the client reads the
    413, not a reset, and no later byte of the body is taken for a new request."""
    url, api = guarded
    size = 3 << 20  # over the 1 MiB body limit
    sock = socket.create_connection(("127.0.0.1", _port(url)), timeout=10)
    sock.sendall(f"POST /ui/auth/realms/vsp-object/protocol/openid-connect/token HTTP/1.1\r\n"
                 f"Host: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                 f"Content-Length: {size}\r\n\r\n".encode())  # fmt: skip
    time.sleep(0.3)  # the answer is out before the body
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"a" * (size - 32))
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert answer.count(b"HTTP/1.1") == 1, "bytes of the body were read as another request"
    _answered_at_once(url)
    assert "Traceback" not in api.log.read_text()


def _read_answer(sock: socket.socket) -> bytes:
    """One answer with a Content-Length, read off a socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))  # fmt: skip
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_an_early_answer_tells_a_keep_alive_client_to_reconnect(guarded):
    """An answer that goes out before the request's body has arrived (here a 401: the token
    is checked first) says `connection: close`, so a keep-alive client does not send its
    next request into a connection that is about to close; an answer to a request whose
    body was all there keeps the connection."""
    url, _ = guarded
    body = b'{"jobId": {"id": 1}}'
    head = (b"POST /mapi/v1/jobs/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))  # fmt: skip
    with socket.create_connection(("127.0.0.1", _port(url)), timeout=10) as sock:
        sock.sendall(head + body)  # all at once: answered, and the connection stays
        first = _read_answer(sock)
        assert first.startswith(b"HTTP/1.1 401") and b"connection: close" not in first.lower()
        sock.sendall(head)  # the body comes late, as a client writing it separately may
        early = _read_answer(sock)
        assert early.startswith(b"HTTP/1.1 401"), early
        assert b"connection: close" in early.lower()
        sock.sendall(body)
        assert sock.recv(1) == b""  # then it closes, once the body is in
    _answered_at_once(url)
