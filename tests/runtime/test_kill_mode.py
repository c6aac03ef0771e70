"""Who gets the stop signal, with real processes: kill_mode = "mixed" (the default) sends
it to the main process alone, which stops its own child (a pool finishing its job), and
what is left of the group once it has exited gets it then, and SIGKILL after a grace of
1 s at most; "group" sends it to the whole group. A stop that runs out of stop_timeout
says what it killed, in the log, status and /metrics."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.helpers import free_port, scrape
from tests.runtime.conftest import alive, gone, read_pids

#: A "pool": the main process runs one job in a child of its own group; on SIGTERM it
#: waits for the job, then exits 0. The job says whether it got SIGTERM itself.
JOB = """
    trap 'echo $$ TERM >> "$D/job"; exit 1' TERM
    echo $$ started >> "$D/job"
    sleep 1.5 & wait $!
    echo $$ done >> "$D/job"
"""
POOL = """
    "$D/job.sh" &
    job=$!
    trap 'echo TERM >> "$D/main"; wait $job; exit 0' TERM
    echo $$ >> "$D/pids"
    while :; do sleep 1000 & echo $! >> "$D/idle"; wait $!; done
"""


def one_worker(d, body: str, stop_timeout: str, extra: str = "", **settings: str) -> None:
    """Configure program w: one worker running the sh script `body`."""
    worker = d.script("worker.sh", body)
    d.write_config(f"""
        [programs.w]
        command = "{worker}"
        start_seconds = "0s"
        stop_timeout = "{stop_timeout}"
        {extra}
    """, **settings)


def pool(d, kill_mode: str | None) -> None:
    d.script("job.sh", JOB)
    one_worker(d, POOL, "10s", f'kill_mode = "{kill_mode}"' if kill_mode else "")


def jobs(tmp_path) -> list[list[str]]:
    """What each job said, in the order they started."""
    said: dict[str, list[str]] = {}
    for line in (tmp_path / "job").read_text().splitlines():
        pid, word = line.split()
        said.setdefault(pid, []).append(word)
    return list(said.values())


def during_the_job(d, tmp_path, *command: str) -> tuple[int, float]:
    """Start the pool, run `workerctl COMMAND` while its job runs; returns the pool's pid
    and when the command was run."""
    d.start()
    (pid,) = d.wait_running("w", 1)
    d.wait_until(lambda: (tmp_path / "job").exists() and read_pids(tmp_path / "idle"), 5, "the job started")
    t0 = time.monotonic()
    result = d.ctl(*command)
    assert result.returncode == 0, result.stderr
    return pid, t0


def stop_during_the_job(d, tmp_path) -> tuple[float, list[str]]:
    _, t0 = during_the_job(d, tmp_path, "stop", "w")
    elapsed = time.monotonic() - t0
    assert (tmp_path / "main").read_text() == "TERM\n"
    (job,) = jobs(tmp_path)
    return elapsed, job


@pytest.mark.parametrize("kill_mode", [None, "mixed"], ids=["default", "mixed"])
def test_mixed_lets_the_main_process_finish_its_childs_job(daemon, tmp_path, kill_mode):
    d = daemon(start=False)
    pool(d, kill_mode)
    elapsed, job = stop_during_the_job(d, tmp_path)
    assert job == ["started", "done"], "the job was signalled, or did not finish"
    assert elapsed >= 1.0, f"the stop took {elapsed:.2f}s: less than the job"
    (proc,) = d.processes("w", None)
    assert (proc["state"], proc["last_exit"]) == ("stopped", "exit status 0")
    # The main process's idle `sleep` was left in the group: it got SIGTERM once the main
    # process had exited.
    for pid in read_pids(tmp_path / "idle"):
        d.wait_until(lambda pid=pid: gone(pid), 5, f"the leftover {pid} gone")


@pytest.mark.parametrize("command", [("restart", "w"), ("restart", "--rolling", "w"), ("scale", "w", "0")],
                         ids=["restart", "rolling", "scale-down"])
def test_restarts_and_scale_down_let_the_job_finish_too(daemon, tmp_path, command):
    d = daemon(start=False)
    pool(d, None)
    old, t0 = during_the_job(d, tmp_path, *command)
    d.wait_until(lambda: gone(old), 10, f"the old worker {old} gone")
    assert jobs(tmp_path)[0] == ["started", "done"], "the job was signalled, or did not finish"
    assert time.monotonic() - t0 >= 0.5, "the old worker went before its job could finish"


def test_group_signals_the_child_too(daemon, tmp_path):
    d = daemon(start=False)
    pool(d, "group")
    elapsed, job = stop_during_the_job(d, tmp_path)
    assert job == ["started", "TERM"]
    assert elapsed < 1.0


def test_a_leftover_that_ignores_the_stop_signal_is_killed_after_the_grace(daemon, tmp_path):
    d = daemon(start=False)
    one_worker(d, """
        (trap '' TERM; exec sleep 1000) &
        echo $! >> "$D/left"
        exec sleep 1000
    """, "30s")
    d.start()
    (pid,) = d.wait_running("w", 1)
    (left,) = d.wait_until(lambda: read_pids(tmp_path / "left"), 5, "the TERM-ignoring child")
    d.wait_until(lambda: Path(f"/proc/{left}/comm").read_text().strip() == "sleep", 5, "its trap set and exec'd")
    t0 = time.monotonic()
    assert d.ctl("stop", "w").returncode == 0
    assert gone(pid) or not alive(pid)
    assert alive(left), "the leftover was killed with its main process: no grace"
    d.wait_until(lambda: gone(left), 5, "the leftover SIGKILLed after the grace")
    assert 0.8 <= time.monotonic() - t0 < 3


def test_a_stop_past_stop_timeout_says_what_it_killed(daemon, tmp_path):
    port = free_port()
    d = daemon(start=False)
    one_worker(d, """
        trap '' TERM
        sleep 1000 &
        echo $$ >> "$D/pids"
        while :; do sleep 1000 & wait $!; done
    """, "1s", metrics=f"127.0.0.1:{port}")
    d.start()
    d.wait_running("w", 1)
    d.wait_until(lambda: read_pids(tmp_path / "pids"), 5, "the trap set")
    assert d.ctl("stop", "w").returncode == 0
    (proc,) = d.processes("w", None)
    assert proc["last_exit"] == "still running 1.0s after SIGTERM: killed by SIGKILL", proc
    assert ("w[0]: still running 1.0s after SIGTERM: SIGKILL to 3 processes; raise stop_timeout if jobs run "
            "longer") in d.stderr_text()
    assert 'workerd_stop_timeouts_total{program="w"} 1.0' in scrape(port)
    assert "still running 1.0s after SIGTERM: killed by SIGKILL" in d.ctl("status").stdout
