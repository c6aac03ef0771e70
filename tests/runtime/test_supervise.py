"""Supervision with real processes: groups, environment, restarts, backoff, fatal,
failed execs, restart policies, cleanup of a crashed worker's children."""

from __future__ import annotations

import itertools
import os
import pwd
import re
import signal
import time
from pathlib import Path

from tests.runtime.conftest import alive, environ_of, gone, ppid_of, read_pids


def test_each_worker_runs_in_its_own_process_group_with_its_env(daemon, tmp_path):
    d = daemon(start=False)
    worker = d.script("env.sh", """
        printf '%s\\n%s\\n%s\\n' "$WORKERD_PROGRAM" "$WORKERD_INSTANCE" "$WORKERD_SOCKET" > "$D/env.$$"
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
    by_pid = {p["pid"]: p["instance"] for p in d.processes("w")}
    assert len(set(pids)) == 3
    for pid in pids:
        assert alive(pid)
        assert os.getpgid(pid) == pid, f"worker {pid} is not the leader of its own group"
        assert os.getpgid(pid) != os.getpgid(d.pid)
        assert ppid_of(pid) == d.pid, "workers are the daemon's children"
        env_file = tmp_path / f"env.{pid}"
        d.wait_until(lambda env_file=env_file: env_file.exists() and len(env_file.read_text().splitlines()) == 3,
                     5, f"{env_file} written")
        program, instance, sock = env_file.read_text().splitlines()
        assert program == "w"
        assert instance == str(by_pid[pid])
        assert sock == str(d.socket)
        env = environ_of(pid)
        assert env["WORKERD_PROGRAM"] == "w"
        assert env["WORKERD_INSTANCE"] == str(by_pid[pid])
        assert env["WORKERD_SOCKET"] == str(d.socket)
    assert sorted(by_pid.values()) == [0, 1, 2]


def test_a_crashed_worker_is_restarted_with_a_new_pid(daemon):
    d = daemon("""
        [programs.w]
        command = "sleep 1000"
        start_seconds = "0.2s"
        backoff_initial = "5s"
    """)
    (old,) = d.wait_running("w", 1)
    os.kill(old, signal.SIGKILL)
    # The first crash after a good run restarts at once (not after backoff_initial = 5s).
    (new,) = d.wait_status(
        lambda s: [p["pid"] for p in d.processes("w", None, s)
                   if p["pid"] not in (None, old) and p["state"] in ("starting", "running")],
        3, "a new process for w")
    assert new != old
    d.wait_until(lambda: gone(old), 5, f"old pid {old} reaped")
    (proc,) = d.wait_status(lambda s: d.processes("w", "running", s), 5, "w running again")
    assert proc["pid"] == new
    assert proc["restarts"] == 1
    assert "SIGKILL" in (proc["last_exit"] or "")
    assert alive(new) and os.getpgid(new) == new


def test_backoff_delays_grow_between_failed_starts(daemon, tmp_path):
    d = daemon(start=False)
    worker = d.script("fail.sh", """
        date +%s.%N >> "$D/starts"
        exit 1
    """)
    d.write_config(f"""
        [programs.w]
        command = "{worker}"
        start_seconds = "1s"
        backoff_initial = "0.2s"
        backoff_factor = 2.0
        backoff_jitter = 0.0
        backoff_max = "10s"
    """)
    d.start()
    starts_file = tmp_path / "starts"

    def starts() -> list[float]:
        try:
            return [float(x) for x in starts_file.read_text().split()]
        except FileNotFoundError:
            return []

    d.wait_until(lambda: len(starts()) >= 4, 10, "4 starts of the failing worker")
    times = starts()[:4]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Expected ~0.2, ~0.4, ~0.8 s: assert growth and sane bounds, not exact timings.
    assert gaps[0] >= 0.15, gaps
    assert gaps[1] >= gaps[0] * 1.4, gaps
    assert gaps[2] >= gaps[1] * 1.4, gaps
    assert gaps[2] < 3.0, gaps
    (proc,) = d.processes("w", None)
    assert proc["state"] in ("backoff", "starting")
    assert proc["restarts"] >= 3


def test_fatal_after_max_restarts_failed_starts_with_the_reason_in_status(daemon, tmp_path):
    d = daemon(start=False)
    worker = d.script("fail.sh", """
        echo $$ >> "$D/pids"
        exit 3
    """)
    d.write_config(f"""
        [programs.w]
        command = "{worker}"
        start_seconds = "1s"
        backoff_initial = "50ms"
        backoff_jitter = 0.0
        max_restarts = 3

        [programs.ok]
        command = "sleep 1000"
        start_seconds = "0s"
    """)
    d.start()
    (proc,) = d.wait_status(lambda s: d.processes("w", "fatal", s), 10, "w fatal")
    assert proc["pid"] is None
    assert proc["reason"], "a fatal process shows why"
    assert "exit status 3" in proc["reason"] or "exit status 3" in (proc["last_exit"] or "")
    assert "3" in proc["reason"]
    time.sleep(0.5)  # nothing more is started once fatal
    assert len(read_pids(tmp_path / "pids")) == 3, "max_restarts = 3: three failed starts, then fatal"
    assert d.processes("w", None)[0]["state"] == "fatal"
    assert len(d.pids("ok")) == 1
    table = d.ctl("status")
    assert table.returncode == 0
    assert "fatal" in table.stdout


def test_exec_failure_is_a_failed_start_with_the_os_error(daemon, tmp_path):
    d = daemon(start=False)
    not_executable = tmp_path / "not-executable.sh"
    not_executable.write_text("#!/bin/sh\nexit 0\n")
    not_executable.chmod(0o644)
    d.write_config(f"""
        [defaults]
        start_seconds = "0.5s"
        backoff_initial = "0.3s"

        [programs.missing]
        command = "/nonexistent/definitely-not-a-command --flag"

        [programs.noexec]
        command = "{not_executable}"

        [programs.good]
        command = "sleep 1000"
        start_seconds = "0s"
    """)
    d.start()
    (good,) = d.wait_running("good", 1)

    def failed(name, text):
        def check(status):
            return [p for p in d.processes(name, None, status)
                    if p["state"] in ("backoff", "starting") and text in (p["last_exit"] or "")
                    and p["restarts"] >= 1]
        return check

    d.wait_status(failed("missing", "No such file or directory"), 5,
                               "missing: backoff with 'No such file or directory'")
    d.wait_status(failed("noexec", "Permission denied"), 5, "noexec: backoff with 'Permission denied'")
    # It keeps being retried, and nothing else suffers.
    d.wait_status(lambda s: [p for p in d.processes("missing", None, s) if p["restarts"] >= 3], 10,
                  "missing retried 3 times")
    assert d.running()
    assert d.pids("good") == [good] and alive(good)
    started = d.ctl("start", "missing")
    assert started.returncode == 1, started
    assert "No such file or directory" in started.stderr


def test_restart_policies_never_and_on_failure(daemon, tmp_path):
    d = daemon(start=False)
    never = d.script("never.sh", """
        echo $$ >> "$D/never"
        sleep 0.2
        exit 5
    """)
    clean = d.script("clean.sh", """
        echo $$ >> "$D/clean"
        exit 0
    """)
    failing = d.script("failing.sh", """
        echo $$ >> "$D/failing"
        exit 1
    """)
    d.write_config(f"""
        [defaults]
        start_seconds = "0s"
        backoff_initial = "50ms"

        [programs.never]
        command = "{never}"
        restart = "never"

        [programs.clean]
        command = "{clean}"
        restart = "on-failure"

        [programs.failing]
        command = "{failing}"
        restart = "on-failure"
    """)
    d.start()
    (proc,) = d.wait_status(lambda s: d.processes("never", "exited", s), 5, "never: exited")
    assert proc["pid"] is None
    assert "exit status 5" in proc["last_exit"]
    d.wait_status(lambda s: d.processes("clean", "exited", s), 5, "clean (exit 0, on-failure): exited")
    d.wait_until(lambda: len(read_pids(tmp_path / "failing")) >= 3, 5, "failing (on-failure) restarted")
    time.sleep(0.3)
    assert len(read_pids(tmp_path / "never")) == 1
    assert len(read_pids(tmp_path / "clean")) == 1
    assert d.processes("never", None)[0]["state"] == "exited"


def test_a_dead_workers_background_child_is_killed_before_the_restart(daemon, tmp_path):
    d = daemon(start=False)
    worker = d.script("forker.sh", """
        sleep 1000 &
        echo $! > "$D/child.$$"
        echo $$ >> "$D/pids"
        if [ ! -e "$D/crashed" ]; then
            touch "$D/crashed"
            sleep 0.3
            exit 1
        fi
        exec sleep 1000
    """)
    d.write_config(f"""
        [programs.w]
        command = "{worker}"
        start_seconds = "0s"
    """)
    d.start()
    first = d.wait_until(lambda: read_pids(tmp_path / "pids")[:1], 5, "the first worker's pid")[0]
    d.track(first)
    child = d.wait_until(lambda: read_pids(tmp_path / f"child.{first}"), 5, "the first child's pid")[0]
    assert os.getpgid(child) == first, "the background child is in the worker's group"
    # The worker exits on its own; its child must not survive it.
    d.wait_until(lambda: len(read_pids(tmp_path / "pids")) >= 2, 5, "the worker restarted")
    d.wait_until(lambda child=child: gone(child), 5, f"the crashed worker's child {child} killed and reaped")
    second = read_pids(tmp_path / "pids")[1]
    assert d.wait_running("w", 1) == [second]
    second_child = read_pids(tmp_path / f"child.{second}")[0]
    assert alive(second_child)

    # Killed from outside: the same.
    os.kill(second, signal.SIGKILL)
    d.wait_until(lambda: gone(second_child), 5, f"the killed worker's child {second_child} killed and reaped")
    d.wait_until(lambda: len(read_pids(tmp_path / "pids")) >= 3, 5, "the worker restarted again")


def test_status_answers_fast_during_a_crash_loop_of_ten_programs(daemon, tmp_path):
    programs = "\n".join(f"""
        [programs.crash{i}]
        command = "sh -c 'exit 1'"
        processes = 2
        start_seconds = "0s"
        backoff_initial = "10ms"
        backoff_max = "50ms"
        backoff_jitter = 0.0
    """ for i in range(10))
    d = daemon(programs)
    deadline = time.monotonic() + 2.0
    worst = 0.0
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        result = d.ctl("status", "--json", timeout=10)
        worst = max(worst, time.monotonic() - t0)
        assert result.returncode == 0, result.stderr
    assert worst < 2.0, f"workerctl status took {worst:.2f}s during a crash loop"
    status = d.status()
    restarts = [p["restarts"] for prog in status["programs"] for p in prog["processes"]]
    assert len(restarts) == 20
    assert min(restarts) >= 5, f"every process keeps being restarted: {restarts}"
    assert d.running()
    # The crash loop does not stop the daemon from stopping them all quickly.
    t0 = time.monotonic()
    stopped = d.ctl("stop", "all", timeout=15)
    assert stopped.returncode == 0, stopped.stderr
    assert time.monotonic() - t0 < 5
    assert all(p["state"] == "stopped" for prog in d.status()["programs"] for p in prog["processes"])


def test_workers_are_started_as_children_of_a_subreaper(daemon):
    """A worker's orphaned child is reparented to the daemon (child subreaper), not init."""
    d = daemon(start=False)
    worker = d.script("orphan.sh", """
        sh -c 'sleep 1000 & echo $! > "$1/orphan"; exit 0' - "$D"
        exec sleep 1000
    """)
    d.write_config(f"""
        [programs.w]
        command = "{worker}"
        start_seconds = "0s"
    """)
    d.start()
    d.wait_running("w", 1)
    orphan = d.wait_until(lambda: read_pids(d.dir / "orphan"), 5, "the orphan's pid")[0]
    d.wait_until(lambda: ppid_of(orphan) == d.pid, 5, "the orphan reparented to the daemon")
    os.kill(orphan, signal.SIGKILL)
    d.wait_until(lambda: gone(orphan), 5, "the orphan reaped by the daemon")


def test_a_long_run_resets_the_backoff(daemon, tmp_path):
    d = daemon(start=False)
    worker = d.script("runs.sh", """
        date +%s.%N >> "$D/starts"
        sleep 0.4
        exit 1
    """)
    d.write_config(f"""
        [programs.w]
        command = "{worker}"
        start_seconds = "0.1s"
        backoff_initial = "3s"
        backoff_reset = "0.3s"
    """)
    d.start()
    starts = tmp_path / "starts"
    d.wait_until(lambda: len(starts.read_text().split()) >= 4 if starts.exists() else False, 5,
                 "4 starts: every run outlasts backoff_reset, so every restart is immediate")
    times = [float(x) for x in starts.read_text().split()][:4]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g < 1.5 for g in gaps), f"restarts waited for a backoff: {gaps}"


def test_workers_get_no_daemon_descriptors_and_stdin_is_dev_null(daemon):
    d = daemon("""
        [programs.w]
        command = "sleep 1000"
        processes = 2
        start_seconds = "0s"
    """, log_dir="logs")
    for pid in d.wait_running("w", 2):
        d.wait_exec(pid, ["sleep", "1000"])
        fds = sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))
        assert fds == [0, 1, 2], f"worker {pid} holds {[(fd, os.readlink(f'/proc/{pid}/fd/{fd}')) for fd in fds]}"
        assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
        assert os.readlink(f"/proc/{pid}/fd/1").startswith("pipe:")
        assert os.readlink(f"/proc/{pid}/fd/1") == os.readlink(f"/proc/{pid}/fd/2"), "stdout and stderr share a pipe"


def test_user_directory_environment_umask_and_nice_apply_to_the_worker(daemon, tmp_path):
    if os.geteuid() != 0:
        import pytest
        pytest.skip("switching to another user needs root")
    d = daemon(start=False)
    env_file = tmp_path / "extra.env"
    env_file.write_text("FROM_FILE=file-value\n# a comment\nexport QUEUE=overridden-by-environment\n")
    d.write_config(f"""
        [programs.w]
        command = "sleep 1000"
        start_seconds = "0s"
        user = "nobody"
        directory = "/"
        environment = {{ QUEUE = "email", RETRIES = 3 }}
        env_file = "{env_file}"
        umask = "027"
        nice = 5
    """)
    d.start()
    (pid,) = d.wait_running("w", 1)
    d.wait_exec(pid, ["sleep", "1000"])
    st = Path(f"/proc/{pid}/status").read_text()
    uid = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)", st, re.MULTILINE).groups()
    gid = re.search(r"^Gid:\s+(\d+)\s+(\d+)\s+(\d+)", st, re.MULTILINE).groups()
    assert uid == ("65534",) * 3
    assert gid == (str(pwd.getpwnam("nobody").pw_gid),) * 3
    assert re.search(r"^Umask:\s+0027$", st, re.MULTILINE), st
    assert os.readlink(f"/proc/{pid}/cwd") == "/"
    assert os.getpriority(os.PRIO_PROCESS, pid) == 5
    env = environ_of(pid)
    assert env["QUEUE"] == "email"
    assert env["RETRIES"] == "3"
    assert env["FROM_FILE"] == "file-value"
    assert env["WORKERD_PROGRAM"] == "w"
    assert os.getpgid(pid) == pid


def test_commands_run_without_a_shell_unless_shell_is_true(daemon, tmp_path):
    d = daemon(f"""
        [defaults]
        restart = "never"
        start_seconds = "0s"

        [programs.plain]
        command = "echo $WORKERD_PROGRAM > {tmp_path}/plain.out; echo done"

        [programs.shelled]
        command = "echo $WORKERD_PROGRAM > {tmp_path}/shelled.out"
        shell = true
    """, log_dir=str(tmp_path / "logs"))
    d.wait_status(lambda s: d.processes("plain", "exited", s) and d.processes("shelled", "exited", s), 5,
                  "both programs exited")
    assert not (tmp_path / "plain.out").exists(), "no shell: no redirection, no expansion"
    d.wait_until(lambda: (tmp_path / "logs" / "plain.log").exists()
                 and (tmp_path / "logs" / "plain.log").read_text(), 3, "plain's output")
    assert (tmp_path / "logs" / "plain.log").read_text() == f"$WORKERD_PROGRAM > {tmp_path}/plain.out; echo done\n"
    assert (tmp_path / "shelled.out").read_text() == "shelled\n"


def test_stop_during_backoff_ends_the_restarts(daemon, tmp_path):
    d = daemon(start=False)
    worker = d.script("fail.sh", """
        echo $$ >> "$D/pids"
        exit 1
    """)
    d.write_config(f"""
        [programs.w]
        command = "{worker}"
        start_seconds = "1s"
        backoff_initial = "0.3s"
        backoff_jitter = 0.0
    """)
    d.start()
    d.wait_status(lambda s: d.processes("w", "backoff", s), 5, "w in backoff")
    result = d.ctl("stop", "w")
    assert result.returncode == 0, result.stderr
    assert [p["state"] for p in d.processes("w", None)] == ["stopped"]
    count = len(read_pids(tmp_path / "pids"))
    time.sleep(0.8)
    assert len(read_pids(tmp_path / "pids")) == count, "a stopped program was started again"
    assert [p["state"] for p in d.processes("w", None)] == ["stopped"]


def test_a_missing_directory_is_a_failed_start_reported_as_chdir(daemon, tmp_path):
    d = daemon(start=False)
    missing = tmp_path / "gone"
    d.write_config(f"""
        [defaults]
        directory = "{missing}"
        start_seconds = "0.5s"
        backoff_initial = "0.3s"

        [programs.on-path]
        command = "sleep 1000"

        [programs.relative]
        command = "./worker.sh"
    """)
    d.start()
    expected = f"chdir {missing}: No such file or directory"
    for name in ("on-path", "relative"):
        d.wait_status(lambda s, name=name: [p for p in d.processes(name, None, s) if p["last_exit"] == expected],
                      5, f"{name}: failed start reported as {expected!r}")
    # `workerd start` said so at once, one line per program, without refusing to run.
    assert f"programs.on-path.directory: {expected}" in d.stderr_text()
    assert "Traceback" not in d.stderr_text()
