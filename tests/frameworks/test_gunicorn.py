"""gunicorn with `rolling = true` under a request loop: a rolling restart loses no request.

What gunicorn does on SIGTERM (gunicorn/arbiter.py): the arbiter (master) stops
gracefully: it closes its listening sockets, sends SIGTERM to its workers, which finish
the request in hand and exit, and waits for them up to --graceful-timeout (30 s), then
SIGKILLs the rest. Two masters can only listen on one port at once with --reuse-port,
and then each *worker* opens its own socket after the fork. gunicorn sends READY=1 as
the arbiter boots, before it forks a worker: before the app is loaded (unless
--preload) and, with --reuse-port, before anything listens: the old gunicorn would be
stopped before the new one serves. etc/examples/gunicorn_conf.py sends READY=1 from a
worker that listens with the app loaded instead.

As the old workers close their sockets, Linux resets the connections still queued on
them (a request or two per restart under a request loop), unless
net.ipv4.tcp_migrate_req = 1 (Linux 5.14+), which hands them to another socket of the
port. The test sets it in a network namespace of its own when the machine's is 0.
"""

from __future__ import annotations

import ctypes
import fcntl
import http.client
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.frameworks.conftest import APPS, BIN, STOP_TIMEOUT, app_environment, timed_ctl
from tests.helpers import free_port
from tests.runtime.conftest import DaemonFactory
from tests.sources.services import missing

#: The longest the request loop may run, whatever happens to the restart.
LOOP_LIMIT = 30.0
ROOT = Path(__file__).resolve().parents[2]
#: The example's settings: READY=1 from a worker that listens, not from the arbiter.
EXAMPLE = ROOT / "etc" / "examples" / "gunicorn_conf.py"
MIGRATE_REQ = Path("/proc/sys/net/ipv4/tcp_migrate_req")
CLONE_NEWNET = 0x40000000
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


@contextmanager
def migrating_listeners() -> Iterator[None]:
    """Run the body where net.ipv4.tcp_migrate_req is 1: here, or else in a new network
    namespace (this thread's, and so its children's) with its loopback up; the thread
    goes back to its own namespace afterwards."""
    if not MIGRATE_REQ.exists():
        missing("net.ipv4.tcp_migrate_req", "Linux 5.14 or later is needed")
    if MIGRATE_REQ.read_text().strip() == "1":
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            missing("net.ipv4.tcp_migrate_req = 1",
                    f"it is 0 and unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())}")
        try:
            with socket.socket() as sock:
                fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh", b"lo", IFF_UP))
            MIGRATE_REQ.write_text("1")
            yield
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the test's own network namespace")
    finally:
        os.close(own)


class RequestLoop(threading.Thread):
    """One GET after another until stopped (or LOOP_LIMIT): each answer's body (the
    serving master's pid) or the error it got."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.answers: list[str] = []
        self.errors: list[str] = []
        self.done = threading.Event()

    def get(self) -> str:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            body = response.read().decode()
            if response.status != 200:
                raise OSError(f"HTTP {response.status}")
            return body
        finally:
            connection.close()

    def run(self) -> None:
        deadline = time.monotonic() + LOOP_LIMIT
        while not self.done.is_set() and time.monotonic() < deadline:
            try:
                self.answers.append(self.get())
            except (OSError, http.client.HTTPException) as exc:
                self.errors.append(f"{time.monotonic():.3f} {exc!r}")

    def finish(self) -> None:
        self.done.set()
        self.join(LOOP_LIMIT)


def test_a_rolling_restart_under_a_request_loop_loses_no_request(daemon: DaemonFactory, tmp_path: Path) -> None:
    with migrating_listeners():
        rolling_restart_under_requests(daemon, tmp_path)


def rolling_restart_under_requests(daemon: DaemonFactory, tmp_path: Path) -> None:
    port = free_port()
    d = daemon(f"""
        [programs.web]
        command = "{BIN}/gunicorn -c {EXAMPLE} --bind 127.0.0.1:{port} --workers 2 wsgi_app:app"
        directory = "{APPS}"
        environment = {app_environment(tmp_path)}
        ready = "notify"
        start_seconds = "0s"
        rolling = true
        stop_timeout = "{STOP_TIMEOUT:g}s"
    """)
    (old,) = d.wait_running("web", 1)
    probe = RequestLoop(port)
    d.wait_until(lambda: _answers(probe), 10, f"gunicorn to answer on port {port}")

    loop = RequestLoop(port)
    loop.start()
    try:
        d.wait_until(lambda: len(loop.answers) >= 20, 10, "the request loop to get going")
        timed_ctl(d, "restart", "web")
        (new,) = d.wait_running("web", 1)
        d.wait_until(lambda: str(new) in loop.answers, 10, f"the new master {new} to answer")
        time.sleep(0.3)
    finally:
        loop.finish()
    assert new != old
    assert loop.errors == [], f"{len(loop.errors)} of {len(loop.errors) + len(loop.answers)} requests failed"
    assert {str(old), str(new)} <= set(loop.answers)


def _answers(probe: RequestLoop) -> bool:
    try:
        probe.get()
        return True
    except (OSError, http.client.HTTPException):
        return False
