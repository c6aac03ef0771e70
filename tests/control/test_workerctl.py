"""The control socket and the two command lines, against the real daemon: socket
permissions and peer checks, one daemon per socket, exit codes and one-line errors."""

from __future__ import annotations

import grp
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from tests.runtime.conftest import (
    PYTHON,
    WORKERCTL,
    Daemon,
    alive,
    gone,
    one_line,
    read_pids,
    socket_mode,
)

SLEEPER = """
    [programs.w]
    command = "sleep 1000"
    start_seconds = "0s"
"""


def workerd(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "workerd", *args], capture_output=True, text=True, check=False,
                          timeout=timeout, env=Daemon.env(), stdin=subprocess.DEVNULL)


def as_user(user: str, group: str) -> tuple[str, ...]:
    return ("setpriv", f"--reuid={user}", f"--regid={group}", "--clear-groups")


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="running workerctl as another user needs root and setpriv",
)


# -- the socket ---------------------------------------------------------------------


def test_the_socket_is_private_by_default(daemon):
    d = daemon(SLEEPER)
    assert socket_mode(d.socket) == 0o600
    st = os.stat(d.socket)
    assert st.st_uid == os.getuid()


def test_socket_mode_and_group(daemon):
    group = "daemon" if _group_exists("daemon") else grp.getgrgid(0).gr_name
    d = daemon(SLEEPER, socket_mode="0660", socket_group=group)
    assert socket_mode(d.socket) == 0o660
    assert os.stat(d.socket).st_gid == grp.getgrnam(group).gr_gid


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


@needs_root
def test_a_peer_that_is_not_allowed_is_refused(daemon):
    d = daemon(SLEEPER, socket_mode="0666")
    d.sockdir.chmod(0o755)  # let `nobody` reach the socket: the peer check must be what refuses
    result = d.ctl("status", prefix=as_user("nobody", "nogroup"))
    assert result.returncode == 1, result
    line = one_line(result.stderr)
    assert "permission denied" in line.lower()
    # It was the daemon's SO_PEERCRED check, not the file permissions, that refused.
    nobody = 65534
    d.wait_until(lambda: re.search(rf"refus.*\b{nobody}\b|\b{nobody}\b.*refus", d.stderr_text(), re.IGNORECASE), 5,
                 "the refusal of uid 65534 in the daemon's log")
    assert d.wait_running("w", 1)


@needs_root
def test_a_member_of_socket_group_is_served(daemon):
    if not _group_exists("daemon"):
        pytest.skip("no 'daemon' group on this system")
    d = daemon(SLEEPER, socket_mode="0660", socket_group="daemon")
    d.sockdir.chmod(0o755)
    served = d.ctl("status", "--json", prefix=as_user("nobody", "daemon"))
    assert served.returncode == 0, served.stderr
    refused = d.ctl("status", prefix=as_user("nobody", "nogroup"))
    assert refused.returncode == 1, refused
    assert "permission denied" in one_line(refused.stderr).lower()


def test_a_second_daemon_on_a_live_socket_exits_2(daemon):
    first = daemon(SLEEPER)
    (pid,) = first.wait_running("w", 1)
    second = workerd("start", "-c", str(first.config_path))
    assert second.returncode == 2, second
    line = one_line(second.stderr)
    assert str(first.socket) in line or "socket" in line
    # The first daemon is untouched and still answers on its socket.
    assert first.wait_running("w", 1) == [pid]
    assert socket_mode(first.socket) == 0o600
    assert first.ctl("status").returncode == 0


def test_a_stale_socket_file_is_replaced(daemon):
    d = daemon(SLEEPER, start=False)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(d.socket))
    stale.close()
    assert d.socket.exists()
    gone_before = d.ctl("status")
    assert gone_before.returncode == 3, gone_before
    d.start()
    assert d.ctl("status").returncode == 0
    d.wait_running("w", 1)


def test_the_socket_of_a_killed_daemon_is_replaced_by_the_next_one(daemon):
    d = daemon(SLEEPER)
    (pid,) = d.wait_running("w", 1)
    d.send(signal.SIGKILL)
    d.wait_exit(5)
    d.wait_until(lambda: not alive(pid), 5, "the old worker killed with its daemon")
    assert d.ctl("status").returncode == 3  # its socket file, if left behind, is stale
    d.start()
    (new,) = d.wait_running("w", 1)
    assert new != pid


# -- workerctl ----------------------------------------------------------------------


def test_workerctl_without_a_daemon_exits_3_with_one_line(tmp_path):
    for target in (tmp_path / "nothing.sock", tmp_path / "no" / "dir" / "x.sock"):
        result = subprocess.run([WORKERCTL, "-s", str(target), "status"], capture_output=True, text=True,
                                timeout=20, env=Daemon.env(), check=False)
        assert result.returncode == 3, result
        one_line(result.stderr)
        assert result.stdout == ""
    not_a_socket = tmp_path / "file.sock"
    not_a_socket.write_text("")
    result = subprocess.run([WORKERCTL, "-s", str(not_a_socket), "stop", "all"], capture_output=True, text=True,
                            timeout=20, env=Daemon.env(), check=False)
    assert result.returncode == 3, result
    one_line(result.stderr)


def test_usage_errors_exit_2(daemon):
    d = daemon(SLEEPER)
    for args in (("frobnicate",), ("scale", "w", "many"), ("scale", "w"), ("signal", "w"), ("logs",)):
        result = d.ctl(*args)
        assert result.returncode == 2, (args, result)
        assert "Traceback" not in result.stderr


def test_workerctl_finds_the_socket_by_config_file_and_environment(daemon, tmp_path):
    d = daemon(SLEEPER, start=False)
    # A socket path relative to the config file.
    relative = os.path.relpath(d.socket, tmp_path)
    text = d.config_path.read_text().replace(f'socket = "{d.socket}"', f'socket = "{relative}"')
    d.config_path.write_text(text)
    d.start()
    by_config = d.ctl("-c", str(d.config_path), "status", "--json", socket_opt=False)
    assert by_config.returncode == 0, by_config.stderr
    env = dict(Daemon.env(), WORKERD_SOCKET=str(d.socket))
    by_env = d.ctl("status", socket_opt=False, env=env)
    assert by_env.returncode == 0, by_env.stderr


def test_workerctl_finds_the_socket_in_a_config_file_that_does_not_parse(daemon, tmp_path):
    d = daemon(SLEEPER)
    broken = tmp_path / "broken.toml"
    broken.write_text(f"""
        [daemon]
        socket = '{os.path.relpath(d.socket, tmp_path)}'  # relative to this file
        shutdown_timeout = 10s

        [programs.w
        command = "sleep 1000"
    """.replace("\n        ", "\n"))
    result = d.ctl("-c", str(broken), "status", "--json", socket_opt=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["programs"][0]["name"] == "w"

    no_socket = tmp_path / "no-socket.toml"
    no_socket.write_text(f'[daemon]\nlog_dir = "logs\n\n[programs.w]\nsocket = "{d.socket}"\n')
    result = d.ctl("-c", str(no_socket), "status", socket_opt=False)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert str(no_socket) in line and "line 2" in line and "-s SOCKET" in line, line

    result = d.ctl("-c", str(tmp_path), "status", socket_opt=False)  # a directory: unreadable
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert str(tmp_path) in line and "-s SOCKET" in line, line


def test_a_request_line_too_long_gets_one_line_and_the_daemon_logs_one_warning(daemon):
    d = daemon(SLEEPER)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    try:
        sock.connect(str(d.socket))
        try:
            sock.sendall(b'{"cmd": "status", "programs": ["' + b"x" * (64 << 20) + b'"]}\n')
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon answered and hung up without reading the rest
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(65536)
            assert chunk, f"no reply line: {reply!r}"
            reply += chunk
    finally:
        sock.close()
    answer = json.loads(reply)
    assert answer["ok"] is False and answer["error"].startswith("request too long"), answer
    logged = [line for line in d.stderr_text().splitlines() if "control:" in line]
    assert len(logged) == 1 and "WARNING" in logged[0] and "over 65536 bytes" in logged[0], logged
    assert "Traceback" not in d.stderr_text()
    assert d.ctl("status").returncode == 0


def test_status_json_and_table(daemon):
    d = daemon(SLEEPER.replace("sleep 1000", "sh -c 'while :; do :; done'"))
    (pid,) = d.wait_running("w", 1)
    time.sleep(0.3)
    result = d.ctl("status", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["daemon"]["pid"] == d.pid
    assert data["daemon"]["version"]
    (program,) = data["programs"]
    assert (program["name"], program["desired"], program["running"]) == ("w", 1, 1)
    (proc,) = program["processes"]
    assert proc["pid"] == pid and proc["state"] == "running" and proc["instance"] == 0
    assert proc["rss"] and proc["rss"] > 0
    assert proc["cpu_percent"] is not None and proc["cpu_percent"] > 10, "a busy loop uses CPU"
    table = d.ctl("status")
    assert table.returncode == 0
    assert "PROGRAM" in table.stdout and str(pid) in table.stdout and "running" in table.stdout
    only = d.ctl("status", "w", "--json")
    assert only.returncode == 0


def test_unknown_program_is_refused_with_exit_1(daemon):
    d = daemon(SLEEPER)
    for args in (("start", "nope"), ("stop", "nope"), ("restart", "nope"), ("scale", "nope", "2"),
                 ("signal", "nope", "TERM"), ("logs", "nope"), ("status", "nope")):
        result = d.ctl(*args)
        assert result.returncode == 1, (args, result)
        assert "nope" in one_line(result.stderr), args
    assert d.wait_running("w", 1)


def test_a_bad_signal_name_is_refused(daemon):
    d = daemon(SLEEPER)
    (pid,) = d.wait_running("w", 1)
    for name in ("NOPE", "SIGFOO", "999"):
        result = d.ctl("signal", "w", name)
        assert result.returncode == 1, (name, result)
        one_line(result.stderr)
    assert d.wait_running("w", 1) == [pid]


def test_signal_reaches_every_process_group_of_the_program(daemon, tmp_path):
    d = daemon(start=False)
    worker = d.script("trap.sh", """
        trap 'echo USR1 >> "$D/got.$$"' USR1
        trap 'echo HUP >> "$D/got.$$"' HUP
        (trap 'echo USR1 >> "$D/child.$$"' USR1; while :; do sleep 1000 & wait $!; done) &
        echo $$ >> "$D/ready"
        while :; do sleep 1000 & wait $!; done
    """)
    d.write_config(f"""
        [programs.w]
        command = "{worker}"
        processes = 2
        start_seconds = "0s"
    """)
    d.start()
    pids = d.wait_running("w", 2)
    d.wait_until(lambda: len(read_pids(tmp_path / "ready")) == 2, 5, "the traps set")
    result = d.ctl("signal", "w", "USR1")
    assert result.returncode == 0, result.stderr
    for pid in pids:
        d.wait_until(lambda pid=pid: (tmp_path / f"got.{pid}").exists(), 5, f"USR1 received by worker {pid}")
    d.wait_until(lambda: len([p for p in tmp_path.glob("child.*")]) == 2, 5, "USR1 received by both children")
    by_number = d.ctl("signal", "w", str(int(signal.SIGHUP)))
    assert by_number.returncode == 0, by_number.stderr
    for pid in pids:
        d.wait_until(lambda pid=pid: "HUP" in (tmp_path / f"got.{pid}").read_text(), 5, f"HUP (by number) at {pid}")
    assert d.wait_running("w", 2) == pids


def test_scale_pins_the_count_and_auto_hands_it_back(daemon):
    d = daemon(SLEEPER)
    (first,) = d.wait_running("w", 1)
    result = d.ctl("scale", "w", "3")
    assert result.returncode == 0, result.stderr
    pids = d.wait_running("w", 3)
    assert first in pids
    program = d.program("w")
    assert program["pinned"] == 3 and program["desired"] == 3
    assert len({os.getpgid(p) for p in pids}) == 3
    back = d.ctl("scale", "w", "auto")
    assert back.returncode == 0, back.stderr
    assert d.wait_running("w", 1) == [first], "scale-down stops the most recently started"
    for pid in pids:
        if pid != first:
            d.wait_until(lambda pid=pid: gone(pid), 5, f"scaled-away worker {pid} gone")
    program = d.program("w")
    assert program["pinned"] is None and program["desired"] == 1
    zero = d.ctl("scale", "w", "0")
    assert zero.returncode == 0
    d.wait_status(lambda s: d.program("w", s)["running"] == 0 and d.program("w", s)["desired"] == 0, 5, "w at 0")
    d.wait_until(lambda: gone(first), 5, "the last worker gone")


def test_start_stop_restart_wait_for_the_outcome(daemon, tmp_path):
    d = daemon(start=False)
    fails = d.script("fails.sh", "exit 7\n")
    d.write_config(f"""
        [programs.w]
        command = "sleep 1000"
        processes = 2
        start_seconds = "0.3s"

        [programs.bad]
        command = "{fails}"
        start_seconds = "0.3s"
        backoff_initial = "2s"
    """)
    d.start()
    pids = d.wait_running("w", 2)

    stopped = d.ctl("stop", "w")
    assert stopped.returncode == 0, stopped.stderr
    assert [p["state"] for p in d.processes("w", None)] == ["stopped", "stopped"]
    assert d.program("w")["enabled"] is False
    for pid in pids:
        d.wait_until(lambda pid=pid: gone(pid), 5, f"worker {pid} gone")

    t0 = time.monotonic()
    started = d.ctl("start", "w")
    assert started.returncode == 0, started.stderr
    assert time.monotonic() - t0 >= 0.25, "start waits for start_seconds"
    new = d.pids("w")
    assert len(new) == 2 and not set(new) & set(pids)

    restarted = d.ctl("restart", "w")
    assert restarted.returncode == 0, restarted.stderr
    again = d.pids("w")
    assert len(again) == 2 and not set(again) & set(new)

    failed = d.ctl("start", "bad")
    assert failed.returncode == 1, failed
    assert "exit status 7" in one_line(failed.stderr)

    t0 = time.monotonic()
    quick = d.ctl("restart", "w", "--no-wait")
    assert quick.returncode == 0, quick.stderr
    assert time.monotonic() - t0 < 2
    d.wait_running("w", 2)

    everything = d.ctl("stop", "all")
    assert everything.returncode == 0, everything.stderr
    assert all(p["state"] in ("stopped",) for prog in d.status()["programs"] for p in prog["processes"])


def test_shutdown_stops_the_daemon(daemon):
    d = daemon(SLEEPER)
    (pid,) = d.wait_running("w", 1)
    result = d.ctl("shutdown")
    assert result.returncode == 0, result.stderr
    assert d.wait_exit(10) == 0
    d.wait_until(lambda pid=pid: gone(pid), 5, "the worker gone")
    assert not d.socket.exists()
    assert d.ctl("status").returncode == 3


def test_a_shutdown_step_that_fails_still_ends_the_daemon(daemon):
    d = daemon(SLEEPER)
    (pid,) = d.wait_running("w", 1)
    d.socket.unlink()
    d.socket.mkdir()  # removing the socket at exit fails (a directory): the daemon must not hang on
    d.send(signal.SIGTERM)
    assert d.wait_exit(10) == 1
    assert "shutdown failed; exiting anyway" in d.stderr_text()
    d.wait_until(lambda: gone(pid), 5, "the worker gone")


# -- workerd ------------------------------------------------------------------------


def test_workerd_check_valid_file(tmp_path):
    path = tmp_path / "workers.toml"
    path.write_text("""
[programs.email]
command = "sleep 1"
processes = 2

[programs.reports]
command = "sleep 2"
""")
    result = workerd("check", "-c", str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for name in ("email", "reports"):
        assert len([line for line in lines if name in line]) == 1, lines
    assert result.stderr == ""


@pytest.mark.parametrize("text, expected", [
    ("[programs.a\ncommand = 'x'\n", re.compile(r"workers\.toml:1:\d+: ")),
    ("[programs.a]\ncommand = 'x'\nprocesess = 2\n", re.compile(r"programs\.a\.procesess.*processes")),
    ("[programs.a]\ncommand = 'x'\nprocesses = 'two'\n", re.compile(r"programs\.a\.processes")),
    ("[programs.a]\ncommand = 'x'\nuser = 'no-such-user-here'\n", re.compile(r"programs\.a\.user")),
    ("[programs.a]\n", re.compile(r"programs\.a.*command")),
])
def test_workerd_check_invalid_file(tmp_path, text, expected):
    path = tmp_path / "workers.toml"
    path.write_text(text)
    result = workerd("check", "-c", str(path))
    assert result.returncode == 2, result
    line = one_line(result.stderr)
    assert expected.search(line), line
    assert result.stdout == ""


def test_workerd_start_with_an_invalid_file_exits_2(tmp_path):
    path = tmp_path / "workers.toml"
    path.write_text("[daemon]\nsocket = 'w.sock'\n[programs.a]\ncommand = 'sleep 1'\nbogus = 1\n")
    result = workerd("start", "-c", str(path))
    assert result.returncode == 2, result
    assert "programs.a.bogus" in one_line(result.stderr)
    assert not (tmp_path / "w.sock").exists()


def test_workerd_version():
    result = workerd("--version")
    assert result.returncode == 0
    from workerd import __version__
    assert __version__ in result.stdout
    assert result.stdout.strip().startswith("workerd")


def test_workerd_start_exits_1_when_it_cannot_set_up(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for key, value in (("log_dir", f"{blocker}/logs"), ("socket", f"{blocker}/w.sock")):
        path = tmp_path / "workers.toml"
        socket_line = "" if key == "socket" else f'socket = "{tmp_path}/w.sock"\n'
        path.write_text(f'[daemon]\n{socket_line}{key} = "{value}"\n[programs.a]\ncommand = "sleep 1000"\n')
        result = workerd("start", "-c", str(path))
        assert result.returncode == 1, (key, result)
        one_line(result.stderr)
