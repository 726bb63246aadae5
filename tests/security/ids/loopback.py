"""Capture on the loopback interface around some traffic (skips where raw sockets are refused)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from gongyun.security.ids.capture import Frame, LiveCapture, parse_tcp
from gongyun.security.ids.stats import Stats


def raw_sockets_allowed() -> bool:
    """True if this process may open an AF_PACKET socket on lo."""
    try:
        LiveCapture("lo").close()
    except (OSError, AttributeError):
        return False
    return True


@contextmanager
def capture_ports(ports: set[int]) -> Iterator[list[Frame]]:
    """Collect loopback frames to or from ``ports`` while the block runs."""
    if not raw_sockets_allowed():
        pytest.skip("AF_PACKET raw sockets are not allowed here")
    cap = LiveCapture("lo")
    frames: list[Frame] = []
    stop = threading.Event()
    stats = Stats()

    def run() -> None:
        for item in cap.frames():
            if item is not None:
                seg = parse_tcp(item[1], item[2], stats)
                if seg is not None and (seg.sport in ports or seg.dport in ports):
                    frames.append(item)
            if stop.is_set():
                return

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield frames
    finally:
        stop.set()
        t.join(2)
        cap.close()


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
