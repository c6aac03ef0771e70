"""Stopping: whole process groups, stop_timeout, graceful parallel shutdown, a second
signal, and workers that never outlive the daemon."""

from __future__ import annotations

import os
import signal
import time

from tests.runtime.conftest import alive, gone, read_pids


def dead(pid: int) -> bool:
    """Killed: gone, or a zombie whose parent has not reaped it yet."""
    return not alive(pid)


def test_stop_kills_the_workers_children_too(daemon, tmp_path):
    d = daemon(start=False)
    worker = d.script("parent.sh", """
        sleep 1000 &
        echo $! >> "$D/children"
        (trap '' TERM; exec sleep 1000) &
        echo $! >> "$D/children"
        echo $$ >> "$D/pids"
        wait
    """)
    d.write_config(f"""
        [programs.w]
        command = "{worker}"
        start_seconds = "0s"
        stop_timeout = "5s"
    """)
    d.start()
    (pid,) = d.wait_running("w", 1)
    children = d.wait_until(lambda: len(read_pids(tmp_path / "children")) == 2 and read_pids(tmp_path / "children"),
                            5, "both children's pids")
    for child in children:
        assert alive(child) and os.getpgid(child) == pid
    t0 = time.monotonic()
    result = d.ctl("stop", "w")
    assert result.returncode == 0, result.stderr
    # The worker exits at once on SIGTERM; its TERM-ignoring child must not wait for stop_timeout.
    assert time.monotonic() - t0 < 4
    (proc,) = d.processes("w", None)
    assert proc["state"] == "stopped" and proc["pid"] is None
    d.wait_until(lambda: gone(pid), 5, f"worker {pid} gone")
    for child in children:
        d.wait_until(lambda: gone(child), 5, f"grandchild {child} gone")


def test_a_worker_ignoring_sigterm_is_killed_after_stop_timeout(daemon, tmp_path):
    d = daemon(start=False)
    worker = d.script("stubborn.sh", """
        trap '' TERM
        echo $$ >> "$D/pids"
        exec sleep 1000
    """)
    d.write_config(f"""
        [programs.w]
        command = "{worker}"
        start_seconds = "0s"
        stop_timeout = "1s"
    """)
    d.start()
    (pid,) = d.wait_running("w", 1)
    d.wait_until(lambda: read_pids(tmp_path / "pids"), 5, "the worker's trap set")
    t0 = time.monotonic()
    result = d.ctl("stop", "w", timeout=20)
    elapsed = time.monotonic() - t0
    assert result.returncode == 0, result.stderr
    assert 0.9 <= elapsed < 10, f"stop took {elapsed:.2f}s with stop_timeout = 1s"
    d.wait_until(lambda: gone(pid), 5, f"worker {pid} gone")
    (proc,) = d.processes("w", None)
    assert proc["state"] == "stopped"
    assert "SIGKILL" in (proc["last_exit"] or ""), proc


def test_sigterm_to_the_daemon_stops_all_workers_in_parallel(daemon, tmp_path):
    d = daemon(start=False)
    worker = d.script("slow_stop.sh", """
        trap 'sleep 1; echo $$ >> "$D/done"; exit 0' TERM
        echo $$ >> "$D/pids"
        sleep 1000 &
        wait
    """)
    d.write_config(f"""
        [programs.w]
        command = "{worker}"
        processes = 5
        start_seconds = "0s"
        stop_timeout = "10s"
    """, shutdown_timeout="20s")
    d.start()
    pids = d.wait_running("w", 5)
    d.wait_until(lambda: len(read_pids(tmp_path / "pids")) == 5, 5, "5 traps set")
    t0 = time.monotonic()
    d.send(signal.SIGTERM)
    code = d.wait_exit(15)
    elapsed = time.monotonic() - t0
    assert code == 0
    assert elapsed >= 0.9, f"the daemon did not wait for its workers ({elapsed:.2f}s)"
    assert elapsed < 3.5, f"5 workers taking 1 s each stopped in {elapsed:.2f}s: not in parallel"
    assert sorted(read_pids(tmp_path / "done")) == sorted(pids), "every worker stopped gracefully"
    for pid in pids:
        d.wait_until(lambda: gone(pid), 5, f"worker {pid} gone")
    assert not d.socket.exists(), "a clean shutdown removes the control socket"


def test_sigint_is_a_graceful_shutdown_too(daemon, tmp_path):
    d = daemon("""
        [programs.w]
        command = "sleep 1000"
        processes = 2
        start_seconds = "0s"
    """)
    pids = d.wait_running("w", 2)
    d.send(signal.SIGINT)
    assert d.wait_exit(10) == 0
    for pid in pids:
        d.wait_until(lambda: gone(pid), 5, f"worker {pid} gone")


def test_a_second_sigterm_kills_at_once(daemon, tmp_path):
    d = daemon(start=False)
    worker = d.script("stubborn.sh", """
        trap '' TERM
        echo $$ >> "$D/pids"
        sleep 1000 &
        echo $! >> "$D/children"
        exec sleep 1000
    """)
    d.write_config(f"""
        [programs.w]
        command = "{worker}"
        processes = 2
        start_seconds = "0s"
        stop_timeout = "30s"
    """, shutdown_timeout="60s")
    d.start()
    pids = d.wait_running("w", 2)
    d.wait_until(lambda: len(read_pids(tmp_path / "children")) == 2, 5, "2 workers' traps set")
    children = read_pids(tmp_path / "children")
    d.send(signal.SIGTERM)
    time.sleep(0.5)
    assert d.running(), "the first SIGTERM waits for the workers (they ignore SIGTERM)"
    assert all(alive(pid) for pid in pids)
    t0 = time.monotonic()
    d.send(signal.SIGTERM)
    code = d.wait_exit(10)
    elapsed = time.monotonic() - t0
    assert elapsed < 3, f"the second SIGTERM took {elapsed:.2f}s to end the daemon"
    assert code >= 0, f"the daemon died by signal {-code}"
    for pid in pids + children:
        d.wait_until(lambda: dead(pid), 5, f"process {pid} killed")


def test_workers_and_their_children_die_with_a_sigkilled_daemon(daemon, tmp_path):
    d = daemon(start=False)
    worker = d.script("family.sh", """
        sleep 1000 &
        echo $! >> "$D/children"
        (trap '' TERM HUP; exec sleep 1000) &
        echo $! >> "$D/children"
        echo $$ >> "$D/pids"
        exec sleep 1000
    """)
    d.write_config(f"""
        [programs.w]
        command = "{worker}"
        processes = 3
        start_seconds = "0s"

        [programs.plain]
        command = "sleep 1000"
        start_seconds = "0s"
    """)
    d.start()
    pids = d.wait_running("w", 3) + d.wait_running("plain", 1)
    children = d.wait_until(lambda: len(read_pids(tmp_path / "children")) == 6 and read_pids(tmp_path / "children"),
                            5, "6 grandchildren's pids")
    everyone = pids + children
    assert all(alive(pid) for pid in everyone)
    d.send(signal.SIGKILL)
    assert d.wait_exit(5) == -signal.SIGKILL
    for pid in everyone:
        d.wait_until(lambda: dead(pid), 5, f"process {pid} killed after the daemon was SIGKILLed")
