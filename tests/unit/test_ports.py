"""Ports the embedded store and the API listen on are chosen where nothing else takes them."""

from __future__ import annotations

import socket

from bucketjobs.storage import embedded
from bucketjobs.storage.embedded import _ephemeral_floor, free_port


def test_a_free_port_and_its_grpc_twin_lie_below_the_ephemeral_range():
    floor = _ephemeral_floor()
    for _ in range(50):
        port = free_port()
        assert port >= 10000 and port + 10000 < floor
        for candidate in (port, port + 10000):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", candidate))  # bindable as returned


def test_a_port_held_by_a_listener_is_skipped(monkeypatch):
    with socket.socket() as held, socket.socket() as held_twin:
        held.bind(("127.0.0.1", 0))  # any port: the choice below is the test's
        held.listen()
        taken = held.getsockname()[1]
        held_twin.bind(("127.0.0.1", 0))
        held_twin.listen()
        twin_taken = held_twin.getsockname()[1] - 10000
        picks = iter([taken, twin_taken, 12345, 12346])
        monkeypatch.setattr(embedded.secrets, "choice", lambda _range: next(picks))
        assert embedded.free_port() in (12345, 12346)  # both taken ones skipped
