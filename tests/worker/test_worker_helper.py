"""`workerd.worker`, the helper a Python worker imports: each call sends the sd_notify
datagram SPEC names to $NOTIFY_SOCKET (here a socket the test binds), and nothing else."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from workerd import worker


@pytest.fixture
def daemon_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket that plays the daemon, at $NOTIFY_SOCKET."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def received(sock: socket.socket, count: int) -> list[bytes]:
    return [sock.recv(4096) for _ in range(count)]


def test_each_call_sends_its_message(daemon_socket):
    assert worker.ready() and worker.busy() and worker.idle() and worker.watchdog() and worker.stopping()
    assert worker.status("importing\nbatch 7")
    assert received(daemon_socket, 6) == [b"READY=1", b"BUSY=1", b"BUSY=0", b"WATCHDOG=1", b"STOPPING=1",
                                          b"STATUS=importing batch 7"]


def test_a_job_is_busy_then_idle_even_when_it_raises(daemon_socket):
    with pytest.raises(RuntimeError), worker.job():
        raise RuntimeError("the job failed")
    assert received(daemon_socket, 2) == [b"BUSY=1", b"BUSY=0"]


def test_an_abstract_address(monkeypatch):
    name = f"workerd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert worker.ready()
        assert sock.recv(64) == b"READY=1"


def test_without_a_daemon_nothing_is_sent_and_nothing_raises(tmp_path, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert worker.ready() is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "missing"))
    assert worker.busy() is False
    with worker.job():
        pass


def test_the_watchdog_interval_is_half_of_watchdog_usec(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert worker.watchdog_interval() == 15.0
    monkeypatch.delenv("WATCHDOG_USEC")
    assert worker.watchdog_interval() is None


def test_importing_it_loads_nothing_else_of_workerd():
    code = "import sys, workerd.worker; print(sorted(m for m in sys.modules if m.startswith('workerd')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.strip() == "['workerd', 'workerd.worker']"
