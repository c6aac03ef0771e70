"""Control clients that send a request and never read the reply: the daemon answers
everyone else promptly, drops them, and its memory comes back."""

from __future__ import annotations

import errno
import json
import socket
import time
from pathlib import Path

from tests.runtime.conftest import bounded_wait

#: The big program's log: about 3 MB, so a `logs` reply of it is far larger than a socket holds.
BIG_LINES = 30000
HUNG_LOGS = 30


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def hang(path: Path, request: bytes) -> socket.socket:
    """Connect, send one request, and never read."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    bounded_wait(lambda: sock.connect_ex(str(path)) in (0, errno.EISCONN), 10, "a place in the listen backlog",
                 interval=0.01)
    sock.sendall(request)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """What the daemon sent before it hung up (a reset included)."""
    sock.settimeout(2)
    data = b""
    try:
        while chunk := sock.recv(1 << 20):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def timed_status(d) -> float:
    """Seconds from connecting to a whole status reply."""
    started = time.monotonic()
    sock = hang(d.socket, b'{"cmd":"status","programs":[]}\n')
    sock.settimeout(30)
    data = b""
    with sock:
        while not data.endswith(b"\n"):
            chunk = sock.recv(1 << 20)
            assert chunk, "the daemon hung up on a client that reads"
            data += chunk
    assert json.loads(data)["ok"]
    return time.monotonic() - started


def test_clients_that_never_read_are_dropped_and_do_not_hold_the_daemon(daemon, tmp_path):
    sleepers = "".join(f"""
        [programs.p{i}]
        command = "sleep 1000"
        processes = 3
        start_seconds = "0s"
    """ for i in range(20))
    d = daemon(f"""
        [programs.big]
        command = "sh -c 'seq -f \\"%09g-{"x" * 90}\\" 1 {BIG_LINES}; exec sleep 1000'"
        start_seconds = "0s"
        {sleepers}
    """, log_dir=str(tmp_path / "logs"))
    log = tmp_path / "logs" / "big.log"
    bounded_wait(lambda: log.exists() and log.stat().st_size >= BIG_LINES * 100, 10, "the big log written")
    d.wait_status(lambda s: sum(p["running"] for p in s["programs"]) == 61, 10, "every worker running")
    baseline = rss_mb(d.pid)

    logs = [hang(d.socket, b'{"cmd":"logs","program":"big","lines":%d}\n' % BIG_LINES) for _ in range(HUNG_LOGS)]
    try:
        assert timed_status(d) < 3.0
        bounded_wait(lambda: rss_mb(d.pid) - baseline < 40, 20, "the memory held for them given back",
                     lambda: f"the daemon holds {rss_mb(d.pid) - baseline:.0f} MB more than before")
        assert timed_status(d) < 3.0
        for sock in logs[:3]:
            assert len(read_all(sock)) < BIG_LINES * 100, "a dropped client's reply was cut short"
        dropped = [line for line in d.stderr_text().splitlines() if "did not read" in line]
        assert len(dropped) == 1, f"one line for a burst, not one per client: {dropped}"
    finally:
        for sock in logs:
            sock.close()
    assert timed_status(d) < 3.0
