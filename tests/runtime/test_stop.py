"""Stopping: whole process groups, stop_timeout, graceful parallel shutdown, a second
signal, and workers that never outlive the daemon."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.runtime.conftest import alive, dead, gone, read_pids


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
    d.wait_until(lambda pid=pid: gone(pid), 5, f"worker {pid} gone")
    for child in children:
        d.wait_until(lambda child=child: gone(child), 5, f"grandchild {child} gone")


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
    d.wait_until(lambda pid=pid: gone(pid), 5, f"worker {pid} gone")
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
        d.wait_until(lambda pid=pid: gone(pid), 5, f"worker {pid} gone")
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
        d.wait_until(lambda pid=pid: gone(pid), 5, f"worker {pid} gone")


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
        d.wait_until(lambda pid=pid: dead(pid), 5, f"process {pid} killed")


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
        d.wait_until(lambda pid=pid: dead(pid), 5, f"process {pid} killed after the daemon was SIGKILLed")


def test_stop_signal_goes_to_the_whole_group_with_kill_mode_group(daemon, tmp_path):
    d = daemon(start=False)
    worker = d.script("hup.sh", """
        (trap 'echo HUP >> "$D/child"; exit 0' HUP; while :; do sleep 1000 & wait $!; done) &
        child=$!
        trap 'echo HUP >> "$D/main"; wait $child; exit 0' HUP
        trap 'echo TERM >> "$D/main"; exit 0' TERM
        echo $$ >> "$D/ready"
        while :; do sleep 1000 & wait $!; done
    """)
    d.write_config(f"""
        [programs.w]
        command = "{worker}"
        start_seconds = "0s"
        stop_signal = "HUP"
        stop_timeout = "5s"
        kill_mode = "group"
    """)
    d.start()
    d.wait_running("w", 1)
    d.wait_until(lambda: read_pids(tmp_path / "ready"), 5, "the traps set")
    t0 = time.monotonic()
    assert d.ctl("stop", "w").returncode == 0
    assert time.monotonic() - t0 < 4
    assert (tmp_path / "main").read_text() == "HUP\n"
    d.wait_until(lambda: (tmp_path / "child").exists(), 5, "the child got HUP too")
    assert (tmp_path / "child").read_text() == "HUP\n"


def test_shutdown_is_quick_with_workers_in_backoff(daemon):
    d = daemon("""
        [programs.crash]
        command = "sh -c 'exit 1'"
        start_seconds = "1s"
        backoff_initial = "30s"

        [programs.w]
        command = "sleep 1000"
        start_seconds = "0s"
    """)
    d.wait_status(lambda s: d.processes("crash", "backoff", s), 5, "crash in backoff")
    t0 = time.monotonic()
    d.send(signal.SIGTERM)
    assert d.wait_exit(10) == 0
    assert time.monotonic() - t0 < 3


def test_shutdown_timeout_bounds_a_graceful_shutdown(daemon, tmp_path):
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
        stop_timeout = "30s"
    """, shutdown_timeout="1s")
    d.start()
    (pid,) = d.wait_running("w", 1)
    d.wait_until(lambda: read_pids(tmp_path / "pids"), 5, "the trap set")
    t0 = time.monotonic()
    d.send(signal.SIGTERM)
    code = d.wait_exit(15)
    elapsed = time.monotonic() - t0
    assert 0.9 <= elapsed < 5, f"shutdown_timeout = 1s, took {elapsed:.2f}s"
    assert code == 0
    d.wait_until(lambda pid=pid: dead(pid), 5, "the stubborn worker killed")


def _slow_stopper(d):
    return d.script("slow.sh", """
        trap 'sleep 1.5; exit 0' TERM
        echo $$ >> "$D/pids"
        sleep 1000 &
        wait
    """)


def test_scale_during_shutdown_starts_nothing(daemon, tmp_path):
    d = daemon(start=False)
    d.write_config(f"""
        [programs.w]
        command = "{_slow_stopper(d)}"
        start_seconds = "0s"
        stop_timeout = "5s"
    """, shutdown_timeout="4s")
    d.start()
    (pid,) = d.wait_running("w", 1)
    d.wait_until(lambda: read_pids(tmp_path / "pids"), 5, "the trap set")
    t0 = time.monotonic()
    d.send(signal.SIGTERM)
    d.wait_status(lambda s: d.processes("w", "stopping", s), 5, "w stopping")
    d.ctl("scale", "w", "3")  # too late: the daemon is shutting down
    code = d.wait_exit(15)
    elapsed = time.monotonic() - t0
    assert code == 0
    assert read_pids(tmp_path / "pids") == [pid], "a worker was started during the shutdown"
    assert elapsed < 3.5, f"the shutdown took {elapsed:.2f}s (workers started during it?)"


def test_reload_during_shutdown_starts_nothing(daemon, tmp_path):
    d = daemon(start=False)
    slow = _slow_stopper(d)
    d.write_config(f"""
        [programs.w]
        command = "{slow}"
        start_seconds = "0s"
        stop_timeout = "5s"
    """, shutdown_timeout="4s")
    d.start()
    (pid,) = d.wait_running("w", 1)
    d.wait_until(lambda: read_pids(tmp_path / "pids"), 5, "the trap set")
    late = d.script("late.sh", """
        echo $$ >> "$D/late"
        exec sleep 1000
    """)
    d.send(signal.SIGTERM)
    d.wait_status(lambda s: d.processes("w", "stopping", s), 5, "w stopping")
    d.write_config(f"""
        [programs.w]
        command = "{slow}"
        start_seconds = "0s"
        stop_timeout = "5s"

        [programs.late]
        command = "{late}"
        start_seconds = "0s"
    """, shutdown_timeout="4s")
    d.ctl("reload")
    d.send(signal.SIGHUP)
    assert d.wait_exit(15) == 0
    assert read_pids(tmp_path / "late") == [], "a reload during the shutdown started a new program"
    assert read_pids(tmp_path / "pids") == [pid]


@pytest.mark.parametrize("user", [None, "nobody"])
def test_stopping_workers_just_after_their_spawn_does_not_reach_the_daemon(daemon, user):
    """A stop signal sent to a worker's group while the forked child has not yet exec'd
    must affect that child only, never the daemon (e.g. through inherited signal handlers).
    With `user`, the child is made by a plain fork rather than vfork."""
    if user is not None and os.geteuid() != 0:
        pytest.skip("switching to another user needs root")
    user_line = f'user = "{user}"' if user else ""
    d = daemon(f"""
        [programs.w]
        command = "sleep 1000"
        processes = 0
        start_seconds = "0s"
        stop_timeout = "2s"
        {user_line}
    """)
    for round_ in range(25):
        up = d.request({"cmd": "scale", "program": "w", "count": 20})
        down = d.request({"cmd": "scale", "program": "w", "count": 0})
        assert up.get("ok") and down.get("ok"), (round_, up, down)
        assert d.running() and "shutting down" not in d.stderr_text(), (
            f"round {round_}: the daemon began a shutdown nobody asked for")
    assert d.ctl("status").returncode == 0


def test_clean_shutdowns_exit_0_without_a_traceback_even_under_load(daemon):
    """A child (the sentinel, a late orphan) exiting as the loop closes must not turn a
    clean shutdown into exit 1 with a traceback. CPU load makes that race likely."""
    d = daemon("""
        [programs.w]
        command = "sleep 1000"
        start_seconds = "0s"
    """, start=False)
    burners = [subprocess.Popen(["sh", "-c", "while :; do :; done"], start_new_session=True)
               for _ in range(os.cpu_count() or 2)]
    try:
        codes = []
        for _ in range(16):
            d.start()
            d.wait_running("w", 1)
            d.send(signal.SIGTERM)
            codes.append(d.wait_exit(15))
    finally:
        for burner in burners:
            burner.kill()
            burner.wait(5)
    assert "Traceback" not in d.stderr_text(), d.stderr_text()[-2000:]
    assert codes == [0] * 16
