"""The sentinel is no single point of failure: when it dies the daemon starts a new one
at once (then with a growing delay, if it keeps dying), hands it every live process
group, logs it, and shows it in status and metrics."""

from __future__ import annotations

import os
import signal
import subprocess

from tests.helpers import free_port, scrape
from tests.runtime.conftest import bounded_wait, cmdline_of, dead, ppid_of, read_pids
from tests.runtime.fakes import FakeClock
from workerd.process.sentinel import Sentinel, restart_delay

# -- pacing: pure ---------------------------------------------------------------------


def test_a_sentinel_that_keeps_dying_is_restarted_at_once_then_with_backoff() -> None:
    streak = 0
    delays = []
    for _ in range(9):
        delay, streak = restart_delay(streak, ran=0.5)
        delays.append(delay)
    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_a_minute_up_ends_the_streak() -> None:
    _, streak = restart_delay(0, ran=1.0)
    _, streak = restart_delay(streak, ran=1.0)
    assert restart_delay(streak, ran=59.0)[0] == 2.0
    assert restart_delay(streak, ran=60.0) == (0.0, 1)


# -- the process ----------------------------------------------------------------------


def reap(pid: int) -> None:
    """These tests have no reaper: wait for the sentinel ourselves (bounded)."""
    def reaped() -> bool:
        return os.waitpid(pid, os.WNOHANG)[0] == pid

    bounded_wait(reaped, 5, f"sentinel {pid} to exit")


def test_a_restarted_sentinel_is_handed_every_group_still_tracked() -> None:
    groups = [subprocess.Popen(["sleep", "1000"], start_new_session=True) for _ in range(3)]
    sentinel = Sentinel(FakeClock())
    try:
        for proc in groups:
            sentinel.track(proc.pid)
        sentinel.forget(groups[2].pid)
        first = sentinel.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        reap(first)
        sentinel.lost()
        assert sentinel.pid is None
        sentinel.track(groups[2].pid)  # tracked while no sentinel runs: handed over too
        sentinel.forget(groups[1].pid)
        sentinel.restart()
        assert sentinel.pid not in (None, first) and sentinel.restarts == 1
        second = sentinel.pid
        sentinel.close()  # EOF, as if the daemon had died: the new sentinel kills what it was handed
        reap(second)
        assert groups[0].wait(5) == -signal.SIGKILL
        assert groups[2].wait(5) == -signal.SIGKILL
        assert groups[1].poll() is None, "a forgotten group was killed"
    finally:
        for proc in groups:
            proc.kill()
            proc.wait(5)


# -- in the daemon --------------------------------------------------------------------


def sentinels(d) -> list[int]:
    """The daemon's children that run the sentinel script."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if ppid_of(int(entry)) == d.pid and cmdline_of(int(entry))[-1:] == ["workerd-sentinel"]:
                    found.append(int(entry))
            except (OSError, IndexError):
                pass
    return found


def test_a_killed_sentinel_is_replaced_and_still_kills_everything_with_the_daemon(daemon, tmp_path):
    port = free_port()
    d = daemon(start=False)
    worker = d.script("family.sh", """
        sleep 1000 &
        echo $! >> "$D/children"
        (trap '' TERM HUP; exec sleep 1000) &
        echo $! >> "$D/children"
        exec sleep 1000
    """)
    d.write_config(f"""
        [programs.w]
        command = "{worker}"
        processes = 2
        start_seconds = "0s"
    """, metrics=f"127.0.0.1:{port}")
    d.start()
    pids = d.wait_running("w", 2)
    children = d.wait_until(lambda: len(read_pids(tmp_path / "children")) == 4 and read_pids(tmp_path / "children"),
                            5, "4 children's pids")
    (first,) = d.wait_until(lambda: sentinels(d), 5, "the sentinel")
    assert d.status()["daemon"]["sentinel"] == {"pid": first, "restarts": 0}
    assert "workerd_sentinel_up 1.0" in scrape(port)

    os.kill(first, signal.SIGKILL)
    (second,) = d.wait_until(lambda: [p for p in sentinels(d) if p != first], 5, "a new sentinel")
    d.wait_until(lambda: f"the sentinel (pid {first}) exited (killed by SIGKILL)" in d.stderr_text(), 5,
                 "the death logged")
    assert d.status()["daemon"]["sentinel"] == {"pid": second, "restarts": 1}
    metrics = scrape(port)
    assert "workerd_sentinel_up 1.0" in metrics
    assert "workerd_sentinel_restarts_total 1.0" in metrics

    d.send(signal.SIGKILL)
    assert d.wait_exit(5) == -signal.SIGKILL
    for pid in pids + children:
        d.wait_until(lambda pid=pid: dead(pid), 5, f"process {pid} killed after the daemon was SIGKILLed")


def test_a_sentinel_killed_again_and_again_is_restarted_with_a_delay(daemon):
    d = daemon("""
        [programs.w]
        command = "sleep 1000"
        start_seconds = "0s"
    """)
    d.wait_running("w", 1)
    (first,) = d.wait_until(lambda: sentinels(d), 5, "the sentinel")
    os.kill(first, signal.SIGKILL)
    (second,) = d.wait_until(lambda: [p for p in sentinels(d) if p != first], 5, "a second sentinel")
    os.kill(second, signal.SIGKILL)
    d.wait_until(lambda: "starting a new one in 1s" in d.stderr_text(), 5, "the second restart delayed")
    assert d.status()["daemon"]["sentinel"] == {"pid": None, "restarts": 1}, "down until the delay passes"
    d.wait_status(lambda s: s["daemon"]["sentinel"]["restarts"] == 2 and s["daemon"]["sentinel"]["pid"]
                  not in (None, first, second), 5, "a third sentinel after the delay")
    assert sentinels(d) == [d.status()["daemon"]["sentinel"]["pid"]]


def test_a_daemon_killed_with_its_sentinel_takes_its_workers_first_processes(daemon, tmp_path):
    """With nothing left to signal them, each worker's first process still dies by its
    parent-death signal. Their children are out of reach without a cgroup
    (docs/processes.md says so); the test kills those itself."""
    d = daemon(start=False)
    worker = d.script("parent.sh", """
        sleep 1000 &
        echo $! >> "$D/children"
        exec sleep 1000
    """)
    d.write_config(f"""
        [programs.w]
        command = "{worker}"
        processes = 3
        start_seconds = "0s"
    """)
    d.start()
    pids = d.wait_running("w", 3)
    children = d.wait_until(lambda: len(read_pids(tmp_path / "children")) == 3 and read_pids(tmp_path / "children"),
                            5, "3 children's pids")
    (sentinel,) = d.wait_until(lambda: sentinels(d), 5, "the sentinel")
    try:
        os.kill(sentinel, signal.SIGKILL)
        d.send(signal.SIGKILL)
        assert d.wait_exit(5) == -signal.SIGKILL
        for pid in pids:
            d.wait_until(lambda pid=pid: dead(pid), 5, f"worker {pid} killed by its parent-death signal")
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
