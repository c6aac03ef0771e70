"""Worker output: log files, nothing lost at exit, `logs -n`/`-f`, SIGUSR1 reopen,
size rotation, and the daemon's stderr when there is no log_dir."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import time

from tests.runtime.conftest import WORKERCTL


def read(path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def test_output_lands_in_the_programs_log_file(daemon, tmp_path):
    d = daemon("""
        [programs.w]
        command = "sh -c 'echo out $WORKERD_INSTANCE; echo err $WORKERD_INSTANCE >&2; exec sleep 1000'"
        processes = 2
        start_seconds = "0s"
    """, log_dir="logs")
    log = tmp_path / "logs" / "w.log"  # log_dir is relative to the config file
    d.wait_until(lambda: len(read(log).splitlines()) == 4, 5, f"4 lines in {log}")
    assert sorted(read(log).splitlines()) == ["err 0", "err 1", "out 0", "out 1"]
    assert "out 0" not in d.stderr_text(), "with log_dir, output does not go to the daemon's stderr"


def test_the_last_lines_of_a_worker_that_exits_at_once_are_kept(daemon, tmp_path):
    d = daemon("""
        [programs.w]
        command = "sh -c 'seq 1 20000; exit 0'"
        restart = "never"
        start_seconds = "0s"
    """, log_dir=str(tmp_path / "logs"))
    d.wait_status(lambda s: d.processes("w", "exited", s), 5, "w exited")
    log = tmp_path / "logs" / "w.log"
    expected = [str(i) for i in range(1, 20001)]
    d.wait_until(lambda: read(log).splitlines()[-1:] == ["20000"], 3, "line 20000 in the log")
    assert read(log).splitlines() == expected


def test_the_last_lines_are_kept_on_a_clean_shutdown_too(daemon, tmp_path):
    d = daemon("""
        [programs.w]
        command = "sh -c 'trap \\"seq 1 5000; exit 0\\" TERM; echo ready; sleep 1000 & wait'"
        start_seconds = "0s"
    """, log_dir=str(tmp_path / "logs"))
    log = tmp_path / "logs" / "w.log"
    d.wait_until(lambda: "ready" in read(log), 5, "the worker ready")
    d.send(signal.SIGTERM)
    assert d.wait_exit(10) == 0
    assert read(log).splitlines() == ["ready"] + [str(i) for i in range(1, 5001)]


def test_logs_n_prints_the_last_lines(daemon, tmp_path):
    d = daemon("""
        [programs.w]
        command = "sh -c 'seq 1 100; exec sleep 1000'"
        start_seconds = "0s"
    """, log_dir=str(tmp_path / "logs"))
    d.wait_until(lambda: "100\n" in read(tmp_path / "logs" / "w.log"), 5, "100 lines logged")
    result = d.ctl("logs", "w", "-n", "5")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["96", "97", "98", "99", "100"]
    default = d.ctl("logs", "w")
    assert default.stdout.splitlines() == [str(i) for i in range(91, 101)]
    unknown = d.ctl("logs", "nope", "-n", "5")
    assert unknown.returncode == 1
    assert "nope" in unknown.stderr


def test_without_log_dir_output_goes_to_the_daemons_stderr_prefixed(daemon):
    d = daemon("""
        [programs.w]
        command = "sh -c 'echo hello $WORKERD_INSTANCE; echo oops >&2; exec sleep 1000'"
        processes = 2
        start_seconds = "0s"
    """)

    def lines() -> list[str]:
        return d.stderr_text().splitlines()

    d.wait_until(lambda: {"w[0]: hello 0", "w[1]: hello 1"} <= set(lines()), 5,
                 "prefixed output on the daemon's stderr")
    assert lines().count("w[0]: oops") == 1 and lines().count("w[1]: oops") == 1
    tail = d.ctl("logs", "w", "-n", "10")
    assert tail.returncode == 0, tail.stderr
    assert "hello 0" in tail.stdout and "hello 1" in tail.stdout
    d.send(signal.SIGUSR1)  # nothing to reopen: harmless
    time.sleep(0.2)
    assert d.running() and d.ctl("status").returncode == 0


def test_sigusr1_reopens_the_log_file(daemon, tmp_path):
    d = daemon("""
        [programs.w]
        command = "sh -c 'i=0; while :; do i=$((i+1)); echo line $i; sleep 0.01; done'"
        start_seconds = "0s"
    """, log_dir=str(tmp_path / "logs"))
    log = tmp_path / "logs" / "w.log"
    moved = tmp_path / "logs" / "w.log.moved"
    d.wait_until(lambda: len(read(log).splitlines()) >= 5, 5, "some lines logged")
    os.rename(log, moved)
    d.wait_until(lambda: len(read(moved).splitlines()) >= 10, 5, "lines still going to the renamed file")
    assert not log.exists()
    d.send(signal.SIGUSR1)
    d.wait_until(lambda: len(read(log).splitlines()) >= 5, 5, "a fresh file at the original path")
    d.ctl("stop", "w")
    old = read(moved).splitlines()
    new = read(log).splitlines()
    numbers = [int(line.split()[1]) for line in old + new]
    assert numbers == list(range(1, len(numbers) + 1)), "no line lost or doubled across the reopen"
    assert os.stat(log).st_ino != os.stat(moved).st_ino


def test_the_log_is_rotated_by_size_keeping_log_backups_files(daemon, tmp_path):
    d = daemon("""
        [programs.w]
        command = "sh -c 'for i in $(seq 0 19); do seq $((i * 5000 + 1)) $((i * 5000 + 5000)); \
                   sleep 0.02; done; exec sleep 1000'"
        start_seconds = "0s"
    """, log_dir=str(tmp_path / "logs"), log_max_bytes="64KiB", log_backups=3)
    logs = tmp_path / "logs"
    d.wait_until(lambda: "100000" in read(logs / "w.log").split() or "100000" in read(logs / "w.log.1").split(),
                 10, "all 100000 lines written")
    assert (logs / "w.log.1").exists()
    assert (logs / "w.log.3").exists()
    assert not (logs / "w.log.4").exists(), sorted(os.listdir(logs))
    for name in ("w.log.1", "w.log.2", "w.log.3"):
        size = (logs / name).stat().st_size
        assert size >= 64 * 1024, f"{name} rotated before reaching log_max_bytes ({size} bytes)"
        assert size < 2 * 64 * 1024, f"{name} is {size} bytes with log_max_bytes = 64KiB"
    # Oldest to newest, the kept files hold an unbroken tail of the output.
    text = "".join(read(logs / name) for name in ("w.log.3", "w.log.2", "w.log.1", "w.log"))
    numbers = [int(x) for x in text.split()]
    assert numbers == list(range(numbers[0], 100001))
    tail = d.ctl("logs", "w", "-n", "3")
    assert tail.stdout.splitlines() == ["99998", "99999", "100000"]


def test_logs_follow_streams_new_output(daemon, tmp_path):
    d = daemon("""
        [programs.w]
        command = "sh -c 'echo started; trap \\"echo got-usr1\\" USR1; while :; do sleep 1000 & wait $!; done'"
        start_seconds = "0s"
    """, log_dir=str(tmp_path / "logs"))
    d.wait_until(lambda: "started" in read(tmp_path / "logs" / "w.log"), 5, "the worker started")
    follow = subprocess.Popen([WORKERCTL, "-s", str(d.socket), "logs", "w", "-n", "5", "-f"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              env=d.env())
    try:
        seen = b""

        def read_until(text: bytes, timeout: float) -> None:
            nonlocal seen
            deadline = time.monotonic() + timeout
            while text not in seen:
                left = deadline - time.monotonic()
                assert left > 0, f"`logs -f` did not print {text!r} within {timeout}s; got {seen!r}"
                ready, _, _ = select.select([follow.stdout], [], [], left)
                if ready:
                    chunk = os.read(follow.stdout.fileno(), 65536)
                    assert chunk, f"`logs -f` ended early: {seen!r} {follow.stderr.read()!r}"
                    seen += chunk

        read_until(b"started\n", 5)
        signalled = d.ctl("signal", "w", "USR1")
        assert signalled.returncode == 0, signalled.stderr
        read_until(b"got-usr1\n", 5)
        assert follow.poll() is None, "`logs -f` keeps following"
    finally:
        follow.terminate()
        try:
            follow.wait(5)
        except subprocess.TimeoutExpired:
            follow.kill()
            follow.wait(5)
    # The daemon notices the follower left and keeps serving.
    d.ctl("signal", "w", "USR1")
    assert d.ctl("status").returncode == 0


def test_instances_sharing_a_log_never_cut_each_others_lines(daemon, tmp_path):
    line = "x" * 100
    d = daemon(f"""
        [programs.w]
        command = "sh -c 'yes $WORKERD_INSTANCE-{line} | head -n 20000; exec sleep 1000'"
        processes = 3
        start_seconds = "0s"
    """, log_dir=str(tmp_path / "logs"))
    log = tmp_path / "logs" / "w.log"
    d.wait_until(lambda: len(read(log).splitlines()) >= 60000, 10, "60000 lines logged")
    lines = read(log).splitlines()
    assert len(lines) == 60000
    for instance in range(3):
        assert lines.count(f"{instance}-{line}") == 20000, f"instance {instance}: cut or lost lines"


def test_a_last_line_without_newline_is_kept(daemon, tmp_path):
    d = daemon("""
        [programs.w]
        command = "sh -c 'echo first; printf no-newline-at-the-end'"
        restart = "never"
        start_seconds = "0s"
    """, log_dir=str(tmp_path / "logs"))
    log = tmp_path / "logs" / "w.log"
    d.wait_status(lambda s: d.processes("w", "exited", s), 5, "w exited")
    d.wait_until(lambda: "no-newline" in read(log), 3, "the partial last line logged")
    assert read(log) == "first\nno-newline-at-the-end\n"


def test_reload_moves_the_logs_to_a_new_log_dir(daemon, tmp_path):
    program = """
        [programs.w]
        command = "sh -c 'echo started; trap \\"echo got-usr1\\" USR1; while :; do sleep 1000 & wait $!; done'"
        start_seconds = "0s"
    """
    d = daemon(program, log_dir=str(tmp_path / "a"))
    (pid,) = d.wait_running("w", 1)
    d.wait_until(lambda: "started" in read(tmp_path / "a" / "w.log"), 5, "output in a/w.log")
    d.write_config(program, log_dir=str(tmp_path / "b"))
    result = d.ctl("reload")
    assert result.returncode == 0, result.stderr
    assert d.wait_running("w", 1) == [pid], "a log_dir change does not restart workers"
    d.ctl("signal", "w", "USR1")
    d.wait_until(lambda: "got-usr1" in read(tmp_path / "b" / "w.log"), 5, "new output in b/w.log")
    assert "got-usr1" not in read(tmp_path / "a" / "w.log")


COUNTER = """
    [programs.w]
    command = "sh -c 'i=0; while :; do i=$((i+1)); echo line $i; sleep 0.01; done'"
    start_seconds = "0s"
"""


def numbers_in(*paths) -> list[int]:
    return [int(line.split()[1]) for path in paths for line in read(path).splitlines()]


def assert_clean_status(d) -> None:
    """A `workerctl status --json` reply is JSON and nothing else (no worker output in it)."""
    result = d.ctl("status", "--json")
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)
    assert "line " not in result.stdout


def assert_shutdown_ends(d) -> None:
    result = d.ctl("shutdown")
    assert result.returncode == 0, result.stderr
    assert d.wait_exit(10) == 0
    assert "Traceback" not in d.stderr_text()


def test_sigusr1_recreates_a_deleted_log_dir(daemon, tmp_path):
    d = daemon(COUNTER, log_dir="logs")
    logs = tmp_path / "logs"
    d.wait_until(lambda: len(read(logs / "w.log").splitlines()) >= 5, 5, "some lines logged")
    shutil.rmtree(logs)
    d.send(signal.SIGUSR1)
    d.wait_until(lambda: len(read(logs / "w.log").splitlines()) >= 5, 5, "lines in a new log_dir/w.log")
    recreated = [line for line in d.stderr_text().splitlines() if str(logs) in line]
    assert len(recreated) == 1, recreated
    assert "WARNING" in recreated[0] and "recreated" in recreated[0]
    assert_clean_status(d)
    assert_shutdown_ends(d)


def test_a_failed_reopen_keeps_the_old_file_until_one_succeeds(daemon, tmp_path):
    d = daemon(COUNTER, log_dir="logs")
    logs, old = tmp_path / "logs", tmp_path / "logs.old"
    d.wait_until(lambda: len(read(logs / "w.log").splitlines()) >= 5, 5, "some lines logged")
    os.rename(logs, old)
    logs.write_text("")  # a file where log_dir was: the directory cannot be recreated
    d.send(signal.SIGUSR1)
    d.wait_until(lambda: "cannot reopen" in d.stderr_text(), 5, "the failed reopen reported")
    before = len(read(old / "w.log").splitlines())
    d.wait_until(lambda: len(read(old / "w.log").splitlines()) >= before + 10, 5, "lines still in the old file")
    for _ in range(3):
        assert_clean_status(d)  # each reply on a fresh connection: none gets worker output
    errors = [line for line in d.stderr_text().splitlines() if "ERROR" in line]
    assert len(errors) == 1 and str(logs) in errors[0], errors
    assert "Traceback" not in d.stderr_text()

    logs.unlink()
    logs.mkdir()
    d.send(signal.SIGUSR1)
    d.wait_until(lambda: len(read(logs / "w.log").splitlines()) >= 5, 5, "lines in the new log file")
    d.ctl("stop", "w")
    numbers = numbers_in(old / "w.log", logs / "w.log")
    assert numbers == list(range(1, len(numbers) + 1)), "no line lost or doubled across the reopens"
    assert_shutdown_ends(d)


def test_a_rotation_that_cannot_open_the_new_file_keeps_writing_to_the_old_one(daemon, tmp_path):
    d = daemon("""
        [programs.w]
        command = "sh -c 'i=0; while :; do i=$((i+1)); echo line $i; [ $((i % 100)) != 0 ] || sleep 0.01; done'"
        start_seconds = "0s"
    """, log_dir="logs", log_max_bytes="64KiB", log_backups=2)
    logs, old = tmp_path / "logs", tmp_path / "logs.old"
    d.wait_until(lambda: (logs / "w.log.1").exists(), 5, "a first rotation")
    os.rename(logs, old)
    logs.write_text("")
    d.wait_until(lambda: "cannot rotate" in d.stderr_text(), 5, "the failed rotation reported")
    d.wait_until(lambda: (old / "w.log").stat().st_size > 8000, 10, "lines still in the old file")
    failures = [line for line in d.stderr_text().splitlines() if "cannot rotate" in line]
    assert len(failures) == 1, f"one line per failure, not one per attempt: {failures}"
    assert "Traceback" not in d.stderr_text()
    assert_clean_status(d)

    logs.unlink()
    logs.mkdir()
    d.wait_until(lambda: (logs / "w.log.1").exists(), 10, "rotation working again")
    assert_shutdown_ends(d)
