"""The real daemon under a stand-in for systemd: a datagram socket as NOTIFY_SOCKET
and a file as the journald stream. What systemd would hear and read, byte for byte."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
import uuid
from pathlib import Path

import pytest

from tests.runtime.conftest import environ_of


class FakeSystemd:
    """systemd's end of NOTIFY_SOCKET: every datagram the daemon sends, in order."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.heard: list[str] = []

    def wait_for(self, predicate, timeout: float = 10.0, what: str = "a message") -> str:
        """The first message (after those already matched) for which predicate is true."""
        deadline = time.monotonic() + timeout
        while True:
            for index, message in enumerate(self.heard):
                if predicate(message):
                    del self.heard[: index + 1]
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"systemd never heard {what}; it heard {self.heard}", pytrace=False)
            self.sock.settimeout(left)
            try:
                self.heard.append(self.sock.recv(4096).decode())
            except TimeoutError:
                pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def systemd(tmp_path):
    fake = FakeSystemd(str(Path("/tmp") / f"wd-notify-{uuid.uuid4().hex[:8]}.sock"))
    yield fake
    fake.close()
    Path(fake.address).unlink(missing_ok=True)


def fields(message: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in message.splitlines())


TWO_SLEEPERS = """
    [programs.w]
    command = "sleep 1000"
    processes = 2
    start_seconds = "0.2s"
"""


def test_ready_once_every_slot_is_spawned_then_status_as_it_changes_and_watchdog_pings(daemon, systemd):
    d = daemon(TWO_SLEEPERS, start=False)
    d.extra_env = {"NOTIFY_SOCKET": systemd.address, "WATCHDOG_USEC": "200000"}
    d.start()
    ready = fields(systemd.wait_for(lambda m: "READY=1" in m, what="READY=1"))
    assert ready["STATUS"] == "0/2 running, 2 starting"
    systemd.wait_for(lambda m: m == "STATUS=2/2 running", what="STATUS=2/2 running")
    pings = [systemd.wait_for(lambda m: m == "WATCHDOG=1", what="WATCHDOG=1") for _ in range(3)]
    assert len(pings) == 3
    for pid in d.wait_running("w", 2):
        env = environ_of(pid)
        assert "WATCHDOG_USEC" not in env and "WATCHDOG_PID" not in env, env
        assert env["NOTIFY_SOCKET"] != systemd.address  # the daemon's own, for ready = "notify"


def test_a_crash_loop_shows_in_the_status_line(daemon, systemd):
    d = daemon("""
        [programs.ok]
        command = "sleep 1000"
        start_seconds = "0s"

        [programs.bad]
        command = "false"
        start_seconds = "0.5s"
        backoff_max = "5s"
    """, start=False)
    d.extra_env = {"NOTIFY_SOCKET": systemd.address}
    d.start()
    systemd.wait_for(lambda m: re.fullmatch(r"STATUS=1/2 running, 1 backoff", m) is not None,
                     what="a status line with the backoff")


def test_a_reload_is_reloading_then_ready_whether_it_applies_or_not(daemon, systemd):
    d = daemon(TWO_SLEEPERS, start=False)
    d.extra_env = {"NOTIFY_SOCKET": systemd.address}
    d.start()
    systemd.wait_for(lambda m: "READY=1" in m, what="READY=1")
    before = time.monotonic_ns() // 1000
    d.send(signal.SIGHUP)
    reloading = fields(systemd.wait_for(lambda m: "RELOADING=1" in m, what="RELOADING=1"))
    assert before <= int(reloading["MONOTONIC_USEC"]) <= time.monotonic_ns() // 1000
    systemd.wait_for(lambda m: "READY=1" in m, what="READY=1 after the reload")
    d.config_path.write_text("[programs.w\n")
    assert d.ctl("reload").returncode != 0
    systemd.wait_for(lambda m: "RELOADING=1" in m, what="RELOADING=1 for the refused reload")
    systemd.wait_for(lambda m: "READY=1" in m, what="READY=1 after the refused reload")


def test_stopping_at_shutdown(daemon, systemd):
    d = daemon(TWO_SLEEPERS, start=False)
    d.extra_env = {"NOTIFY_SOCKET": systemd.address}
    d.start()
    systemd.wait_for(lambda m: "READY=1" in m, what="READY=1")
    d.send(signal.SIGTERM)
    systemd.wait_for(lambda m: "STOPPING=1" in m, what="STOPPING=1")
    assert d.wait_exit(15) == 0


def test_an_abstract_notify_socket(daemon):
    abstract = FakeSystemd(f"@workerd-test-{uuid.uuid4().hex}")
    try:
        d = daemon(TWO_SLEEPERS, start=False)
        d.extra_env = {"NOTIFY_SOCKET": abstract.address}
        d.start()
        abstract.wait_for(lambda m: "READY=1" in m, what="READY=1 on the abstract socket")
    finally:
        abstract.close()


def test_a_notify_socket_that_points_nowhere_is_logged_once_and_the_daemon_runs_on(daemon, tmp_path):
    d = daemon(TWO_SLEEPERS, start=False)
    d.extra_env = {"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock"), "WATCHDOG_USEC": "100000"}
    d.start()
    d.wait_running("w", 2)
    assert d.ctl("reload").returncode == 0
    time.sleep(0.5)  # a few watchdog periods: each would be a send
    complaints = [line for line in d.stderr_text().splitlines() if "cannot notify systemd" in line]
    assert len(complaints) == 1, d.stderr_text()
    assert "Traceback" not in d.stderr_text()


def test_under_journald_each_line_has_its_priority_and_no_timestamp(daemon):
    d = daemon("""
        [programs.bad]
        command = "false"
        start_seconds = "0.5s"
    """, start=False)
    d.stderr_path.touch()
    st = os.stat(d.stderr_path)
    d.extra_env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
    d.start()
    d.wait_status(lambda s: d.program("bad", s)["processes"][0]["state"] == "backoff", what="a backoff")
    lines = d.stderr_text().splitlines()
    assert any(line.startswith("<6>started 1 program(s)") for line in lines), lines
    assert any(line.startswith("<4>bad[0]: ") for line in lines), lines
    assert all(re.match(r"<[2-7]>", line) for line in lines), lines
    assert not any(re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", line) for line in lines), lines


def test_a_journal_stream_of_another_file_keeps_the_timestamps(daemon):
    d = daemon(TWO_SLEEPERS, start=False)
    d.extra_env = {"JOURNAL_STREAM": "1:1"}
    d.start()
    d.wait_running("w", 2)
    first = d.stderr_text().splitlines()[0]
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ workerd INFO ", first), first
