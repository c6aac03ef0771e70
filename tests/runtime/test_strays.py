"""Strays: a worker's descendants that called setsid() and so left its process group and
session. They go with their worker — on a crash, a stop, a shutdown, a SIGKILLed daemon —
and a stray of a worker that is still running is left alone."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.conftest import alive, dead, environ_of, gone, ppid_of, read_pids

#: A worker that makes a stray when the test touches $D/go: `setsid` in a background job
#: (not a group leader) calls setsid() and execs, so $! is the stray itself. Waiting for
#: the go file keeps the daemon from seeing the stray before the test acts.
MAKES_A_STRAY = """
    echo $$ >> "$D/pids"
    while [ ! -e "$D/go" ]; do sleep 0.02; done
    setsid sleep 1000 &
    echo $! >> "$D/strays"
    exec sleep 1000
"""


@pytest.fixture(autouse=True)
def kill_leftover_strays(tmp_path: Path) -> Iterator[None]:
    """The daemon's teardown kills the worker groups it saw, not strays: a stray that outlived
    a failed test is killed here with its session (each stray leads one, and its pid is in
    the files its script wrote), member by member, if it carries a worker's environment."""
    yield
    sessions = {pid for name in ("strays", "deaf", "helper") for pid in read_pids(tmp_path / name)}
    for entry in os.listdir("/proc"):
        try:
            pid = int(entry)
            if os.getsid(pid) in sessions and "WORKERD_PROGRAM" in environ_of(pid):
                os.kill(pid, signal.SIGKILL)
        except (ValueError, OSError):
            pass


def start_with_a_stray(d, body: str = MAKES_A_STRAY) -> tuple[int, int]:
    """Start program w of `d` (made with start=False), let it make its stray; (worker, stray)."""
    worker = d.script("worker.sh", body)
    d.write_config(f"""
        [programs.w]
        command = "{worker}"
        start_seconds = "0s"
        stop_timeout = "5s"
    """)
    d.start()
    (pid,) = d.wait_running("w", 1)
    (d.dir / "go").touch()
    (stray,) = d.wait_until(lambda: read_pids(d.dir / "strays"), 5, "the stray's pid")
    # $! is known before the background job has run setsid.
    d.wait_until(lambda: os.getsid(stray) == stray != os.getsid(pid), 5, "the stray to lead a session of its own")
    return pid, stray


def test_a_stray_dies_with_its_crashed_worker(daemon):
    d = daemon(start=False)
    pid, stray = start_with_a_stray(d)
    os.kill(pid, signal.SIGKILL)
    d.wait_until(lambda: gone(stray), 5, f"the crashed worker's stray {stray} killed and reaped")
    d.wait_until(lambda: len(read_pids(d.dir / "pids")) == 2, 5, "the worker restarted")


def test_a_grandchilds_stray_dies_with_its_crashed_worker(daemon):
    """The stray's parent is a child of the worker, still alive (in the worker's group)
    when the worker dies: the stray is found through it."""
    d = daemon(start=False)
    pid, stray = start_with_a_stray(d, """
        echo $$ >> "$D/pids"
        sh -c 'while [ ! -e "$1/go" ]; do sleep 0.02; done
               setsid sleep 1000 &
               echo $! >> "$1/strays"
               exec sleep 1000' - "$D" &
        exec sleep 1000
    """)
    os.kill(pid, signal.SIGKILL)
    d.wait_until(lambda: gone(stray), 5, f"the grandchild's stray {stray} killed and reaped")


def test_workerctl_stop_sends_the_stop_signal_to_strays_then_kills_them(daemon):
    d = daemon(start=False)
    d.script("polite.sh", """
        trap 'echo TERM >> "$D/polite.got"; exit 0' TERM
        echo $$ >> "$D/strays"
        while :; do sleep 1000 & wait $!; done
    """)
    d.script("deaf.sh", """
        trap '' TERM
        echo $$ >> "$D/deaf"
        exec sleep 1000
    """)
    _, polite = start_with_a_stray(d, """
        echo $$ >> "$D/pids"
        while [ ! -e "$D/go" ]; do sleep 0.02; done
        setsid "$D/polite.sh" &
        setsid "$D/deaf.sh" &
        # On TERM, wait (bounded by stop_timeout) until the polite stray has written that it
        # got TERM too: once the worker exits, its strays are SIGKILLed, trap or not.
        trap 'while [ ! -s "$D/polite.got" ]; do sleep 0.01; done; exit 0' TERM
        while :; do sleep 1000 & wait $!; done
    """)
    (deaf,) = d.wait_until(lambda: read_pids(d.dir / "deaf"), 5, "the deaf stray's pid")
    assert os.getsid(deaf) == deaf
    t0 = time.monotonic()
    result = d.ctl("stop", "w")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - t0 < 4, "the worker exits on SIGTERM: nothing waits for stop_timeout"
    assert (d.dir / "polite.got").read_text() == "TERM\n", "the stray got the worker's stop signal"
    for stray in (polite, deaf):
        d.wait_until(lambda stray=stray: gone(stray), 5, f"stray {stray} gone after the stop")


def test_a_stray_dies_in_a_graceful_shutdown(daemon):
    d = daemon(start=False)
    _, stray = start_with_a_stray(d)
    d.send(signal.SIGTERM)
    assert d.wait_exit(10) == 0
    d.wait_until(lambda: dead(stray), 5, f"stray {stray} killed by the shutdown")


def test_a_stray_seen_by_a_status_dies_with_a_sigkilled_daemon(daemon):
    d = daemon(start=False)
    pid, stray = start_with_a_stray(d)
    d.status()  # the daemon looks for strays whenever it reads /proc; the sentinel learns of this one
    d.send(signal.SIGKILL)
    assert d.wait_exit(5) == -signal.SIGKILL
    d.wait_until(lambda: dead(pid), 5, f"worker {pid} killed with the daemon")
    d.wait_until(lambda: dead(stray), 5, f"stray {stray} killed with the daemon")


def test_a_running_workers_daemonised_helper_stays_until_its_worker_stops(daemon):
    """A double fork while the worker runs: the helper is the daemon's orphan at once.
    Another worker's crash, a status or a sweep must not take it for an abandoned one."""
    d = daemon(start=False)
    keeper = d.script("keeper.sh", """
        sh -c 'setsid sleep 1000 & echo $! > "$1/helper"' - "$D"
        trap 'exit 0' TERM
        while :; do sleep 1000 & wait $!; done
    """)
    d.write_config(f"""
        [programs.keeper]
        command = "{keeper}"
        start_seconds = "0s"

        [programs.crasher]
        command = "sleep 1000"
        start_seconds = "0s"
    """)
    d.start()
    (keeper_pid,) = d.wait_running("keeper", 1)
    (crasher,) = d.wait_running("crasher", 1)
    (helper,) = d.wait_until(lambda: read_pids(d.dir / "helper"), 5, "the helper's pid")
    d.wait_until(lambda: ppid_of(helper) == d.pid and os.getsid(helper) == helper, 5,
                 "the helper in a session of its own, orphaned to the daemon")
    os.kill(crasher, signal.SIGKILL)
    d.wait_status(lambda s: [p for p in d.pids("crasher", "running") if p != crasher], 5, "crasher restarted")
    time.sleep(0.5)  # longer than the sweep that follows a crash
    d.status()
    assert alive(helper), "the helper of a running worker was killed"
    assert d.ctl("stop", "keeper").returncode == 0
    d.wait_until(lambda: gone(helper), 5, f"helper {helper} gone with its worker")
    d.wait_until(lambda: gone(keeper_pid), 5, f"worker {keeper_pid} gone")



#: A worker that keeps making sessions (100 a second, and ignores SIGTERM), so every look
#: at /proc finds sessions the last one did not.
SESSION_STORM = """
    trap '' TERM
    echo $$ >> "$D/pids"
    while :; do
        setsid sleep 1000 &
        echo $! >> "$D/strays"
        sleep 0.01
    done
"""


def test_a_worker_making_sessions_without_end_stops_within_stop_timeout_and_a_few_log_lines(daemon):
    d = daemon(start=False)
    worker = d.script("worker.sh", SESSION_STORM)
    d.write_config(f"""
        [programs.w]
        command = "{worker}"
        start_seconds = "0s"
        stop_timeout = "2s"
    """)
    d.start()
    (pid,) = d.wait_running("w", 1)
    d.wait_until(lambda: len(read_pids(d.dir / "strays")) >= 10, 5, "sessions being made")
    lines_before = len(d.stderr_text().splitlines())
    started = time.monotonic()
    result = d.ctl("stop", "w")
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert took < 2 + 1.0, f"the stop took {took:.1f}s for a stop_timeout of 2s"
    assert gone(pid)
    # Nothing of the worker's is left a moment later: not a spawner, not a sleep.
    time.sleep(0.5)
    left = [p for p in _worker_processes(d) if alive(p)]
    assert left == [], f"{len(left)} processes of the stopped worker left"
    new_lines = d.stderr_text().splitlines()[lines_before:]
    assert len(new_lines) <= 10, "\n".join(new_lines[:20])


def _worker_processes(d) -> list[int]:
    """Processes that carry this daemon's socket in their environment (its workers' tree)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if environ_of(int(entry)).get("WORKERD_SOCKET") == str(d.socket):
                    found.append(int(entry))
            except OSError:
                pass
    return found
