"""The node-level reachability probe: time a TCP connect to a peer.

Autopilot's `ping` check sends ICMP echo requests to the other nodes' addresses. ICMP needs a raw
socket (root or CAP_NET_RAW) that Flotilla, a user process, does not have; a TCP connect needs no
privilege and exercises the same path (the network stack, the peer's listening process). On the
embedded platform every node is this machine, so the health monitor connects to the control plane's
own API port on loopback: if that fails, nothing on the node can reach the control plane either.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable


def tcp_ping(
    host: str, port: int, timeout: float = 1.0, clock: Callable[[], float] = time.perf_counter
) -> float | None:
    """Seconds a TCP connect to `host:port` took, or None if it failed or took over `timeout`.
    The connection is closed at once; nothing is sent."""
    start = clock()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return max(clock() - start, 0.0)
    except OSError:
        return None
