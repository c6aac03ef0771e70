"""What tests in more than one folder share, so that no test module imports another."""

from __future__ import annotations

import socket
import urllib.request


def free_port() -> int:
    """A loopback port nothing listens on (bound and released: it refuses connections)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> str:
    """The daemon's /metrics page on a loopback port."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        assert reply.status == 200
        return reply.read().decode()
