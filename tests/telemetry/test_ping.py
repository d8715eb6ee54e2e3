"""tcp_ping: the latency of a TCP connect on loopback, or None."""

from __future__ import annotations

import socket

from flotilla.telemetry.ping import tcp_ping


def test_tcp_ping_a_listening_port_and_a_closed_one() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        latency = tcp_ping("127.0.0.1", port, timeout=2.0)
        assert latency is not None and 0 <= latency < 2.0
    assert tcp_ping("127.0.0.1", port, timeout=2.0) is None  # nothing listens there any more


def test_tcp_ping_uses_the_injected_clock() -> None:
    ticks = iter([10.0, 10.25])
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert tcp_ping("127.0.0.1", server.getsockname()[1], clock=lambda: next(ticks)) == 0.25
