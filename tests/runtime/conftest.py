"""The real daemon, real children: a `daemon` fixture factory and OS-level helpers.

`daemon(programs_toml, **daemon_settings)` writes `<tmp>/w.toml` (a `[daemon]` table
with a short absolute socket path, then the programs), starts
`python -m workerd start -c FILE` with its stderr in a file, and waits (bounded) until
the control socket answers. At teardown the daemon gets SIGTERM, then SIGKILL by pid
if it is still alive after 15 s, and every worker process group the test saw is
SIGKILLed by pgid (only groups whose members carry this daemon's WORKERD_SOCKET).
Nothing is ever killed by name.

Every wait is bounded; a failed wait says what it waited for and shows the last
status. A failing test shows the daemon's stderr in its report.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

PYTHON = sys.executable
WORKERCTL = str(Path(sys.executable).with_name("workerctl"))
POLL = 0.02
READY_TIMEOUT = 10.0
TEARDOWN_TIMEOUT = 15.0


# -- what the OS shows --------------------------------------------------------------


def proc_state(pid: int) -> str | None:
    """The state letter in /proc/PID/stat, or None when the pid does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rfind(")") + 2]


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    state = proc_state(pid)
    return state is not None and state not in ("Z", "X")


def gone(pid: int) -> bool:
    """No such pid at all (killed and reaped)."""
    return proc_state(pid) is None


def dead(pid: int) -> bool:
    """Killed: gone, or a zombie whose parent has not reaped it yet."""
    return not alive(pid)


def ppid_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return int(data[data.rfind(")") + 2:].split()[1])


def environ_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        raw = f.read()
    env = {}
    for item in raw.split(b"\0"):
        if b"=" in item:
            key, _, value = item.partition(b"=")
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def cmdline_of(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [part.decode(errors="replace") for part in f.read().split(b"\0") if part]
    except (FileNotFoundError, ProcessLookupError):
        return []


def pgid_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) == pgid:
                members.append(int(entry))
        except (ProcessLookupError, PermissionError):
            pass
    return members


def read_pids(path: Path) -> list[int]:
    """Pids written one per line by a worker script."""
    try:
        return [int(line) for line in path.read_text().split()]
    except FileNotFoundError:
        return []


def bounded_wait(predicate: Callable[[], Any], timeout: float, what: str,
                 detail: Callable[[], str] | None = None, interval: float = POLL) -> Any:
    """Poll until predicate() is truthy; fail with `what` (and `detail()`) after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = f"\n{detail()}" if detail is not None else ""
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}{extra}", pytrace=False)
        time.sleep(interval)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(str(value))


# -- the daemon ---------------------------------------------------------------------


class Daemon:
    """One `workerd start` process and the files of one test."""

    def __init__(self, tmp_path: Path, name: str = "w") -> None:
        self.dir = tmp_path
        self.name = name
        # A short directory: pytest's tmp_path can push a socket path past 107 bytes.
        self.sockdir = Path(tempfile.mkdtemp(prefix="wd-", dir="/tmp"))
        self.socket = self.sockdir / f"{name}.sock"
        self.config_path = tmp_path / f"{name}.toml"
        self.stderr_path = tmp_path / f"{name}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        #: Worker pids seen in any status or registered by a test: their groups die at teardown.
        self.seen: set[int] = set()
        self.last_status: dict[str, Any] | None = None
        self.returncode: int | None = None
        #: Variables added to the daemon's environment (systemd's, in the service tests).
        self.extra_env: dict[str, str] = {}

    # -- files ----------------------------------------------------------------

    def write_config(self, programs: str, **settings: Any) -> Path:
        daemon = {"socket": str(self.socket), "shutdown_timeout": "10s"}
        daemon.update({k: v for k, v in settings.items()})
        lines = ["[daemon]"] + [f"{k} = {toml_value(v)}" for k, v in daemon.items() if v is not None]
        self.config_path.write_text("\n".join(lines) + "\n\n" + textwrap.dedent(programs))
        return self.config_path

    def script(self, name: str, body: str) -> str:
        """Write an executable sh script into the test's directory; `$D` is that directory.
        Returns the path, quoted for a `command = "..."` line."""
        path = self.dir / name
        path.write_text(f"#!/bin/sh\nD={shlex.quote(str(self.dir))}\n" + textwrap.dedent(body).lstrip("\n"))
        path.chmod(0o755)
        return shlex.quote(str(path))

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- the process ----------------------------------------------------------

    def start(self, wait: bool = True) -> Daemon:
        assert not self.running(), "this daemon is already running"
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "workerd", "start", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=self.dir,
                env={**self.env(), **self.extra_env}, start_new_session=True,
            )
        if wait:
            self.wait_ready()
        return self

    @staticmethod
    def env() -> dict[str, str]:
        env = dict(os.environ)
        for key in ("WORKERD_SOCKET", "WORKERD_CONFIG", "WORKERD_PROGRAM", "WORKERD_INSTANCE", "NOTIFY_SOCKET",
                    "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
            env.pop(key, None)
        return env

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        def answered() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"the daemon exited with {self.proc.returncode} before answering:\n"
                            f"{self.stderr_text()}", pytrace=False)
            try:
                self.status()
                return True
            except (OSError, ValueError):
                return False

        bounded_wait(answered, timeout, f"the daemon to answer on {self.socket}", self.stderr_text)

    def send(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the daemon did not exit within {timeout:g}s\n{self.stderr_text()}", pytrace=False)
        return self.returncode

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- talking to it --------------------------------------------------------

    def ctl(self, *args: str, timeout: float = 30.0, socket_opt: bool = True,
            env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        """Run `workerctl -s SOCKET ARGS...`; returns the completed process (text)."""
        argv = [*prefix, WORKERCTL] + (["-s", str(self.socket)] if socket_opt else []) + list(args)
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                              env=env if env is not None else self.env(), stdin=subprocess.DEVNULL)

    def ctl_async(self, *args: str) -> subprocess.Popen[str]:
        """Start `workerctl -s SOCKET ARGS...` without waiting; the caller polls and waits."""
        return subprocess.Popen([WORKERCTL, "-s", str(self.socket), *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env(), stdin=subprocess.DEVNULL)

    def request(self, message: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """One request over the control protocol (JSON lines), one reply."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(self.socket))
            sock.sendall(json.dumps(message).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        finally:
            sock.close()
        reply: dict[str, Any] = json.loads(data)
        return reply

    def status(self, timeout: float = 5.0) -> dict[str, Any]:
        """The daemon's status, over the control protocol (the same request `workerctl
        status --json` sends; fast enough to poll every 20 ms)."""
        reply = self.request({"cmd": "status", "programs": []}, timeout)
        if not reply.get("ok"):
            raise ValueError(f"status refused: {reply}")
        status: dict[str, Any] = reply["status"]
        self.last_status = status
        for program in status["programs"]:
            for p in program["processes"]:
                if p["pid"] is not None:
                    self.seen.add(p["pid"])
        return status

    def track(self, *pids: int) -> None:
        self.seen.update(pids)

    def program(self, name: str, status: dict[str, Any] | None = None) -> dict[str, Any] | None:
        status = status if status is not None else self.status()
        for program in status["programs"]:
            if program["name"] == name:
                return program  # type: ignore[no-any-return]
        return None

    def processes(self, name: str, state: str | None = "running",
                  status: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        program = self.program(name, status)
        if program is None:
            return []
        return [p for p in program["processes"] if state is None or p["state"] == state]

    def pids(self, name: str, state: str | None = "running") -> list[int]:
        return [p["pid"] for p in self.processes(name, state) if p["pid"] is not None]

    def describe(self) -> str:
        return (f"last status: {json.dumps(self.last_status, indent=1)}\n"
                f"daemon stderr (last 3000 chars):\n{self.stderr_text()[-3000:]}")

    def wait_until(self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "a condition") -> Any:
        """Poll predicate() every 20 ms until truthy; fail with the last status after timeout."""
        return bounded_wait(predicate, timeout, what, self.describe)

    def wait_status(self, predicate: Callable[[dict[str, Any]], Any], timeout: float = 10.0,
                    what: str = "a status") -> Any:
        """Poll the status until predicate(status) is truthy; returns that value."""
        return self.wait_until(lambda: predicate(self.status()), timeout, what)

    def wait_exec(self, pid: int, argv: list[str], timeout: float = 5.0) -> None:
        """Wait until PID runs ARGV: a slot can be "running" (start_seconds = 0) a hair
        before the worker's own program is exec'd."""
        self.wait_until(lambda: cmdline_of(pid) == argv, timeout, f"pid {pid} to exec {argv}")

    def wait_running(self, name: str, count: int, timeout: float = 10.0) -> list[int]:
        """Wait until NAME has exactly COUNT running processes; returns their pids by instance."""
        def check(status: dict[str, Any]) -> list[int] | None:
            procs = sorted(self.processes(name, None, status), key=lambda p: p["instance"])
            running = [p for p in procs if p["state"] == "running"]
            if len(running) == count and len(procs) == count:
                return [p["pid"] for p in running] or [-1]
            return None

        pids = self.wait_status(check, timeout, f"{count} running process(es) of {name!r}")
        return [] if pids == [-1] else pids  # type: ignore[no-any-return]

    # -- teardown -------------------------------------------------------------

    def teardown(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.kill(self.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(TEARDOWN_TIMEOUT)
                except subprocess.TimeoutExpired:
                    os.kill(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(5)
            if self.returncode is None:
                self.returncode = self.proc.returncode
        self.kill_seen_groups()
        shutil.rmtree(self.sockdir, ignore_errors=True)

    def kill_seen_groups(self) -> None:
        """SIGKILL, by pgid, every group the test saw that still holds one of our workers."""
        if not self.seen:
            return
        mine = str(self.socket)
        for pgid in sorted(self.seen):
            for member in pgid_members(pgid):
                try:
                    if environ_of(member).get("WORKERD_SOCKET") != mine:
                        continue
                except OSError:
                    continue
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                break


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for d in getattr(item, "_workerd_daemons", []):
            report.sections.append((f"workerd stderr ({d.name}, {report.when})", d.stderr_text() or "(empty)"))


DaemonFactory = Callable[..., Daemon]


@pytest.fixture
def daemon(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DaemonFactory]:
    """daemon(programs_toml, start=True, name="w", **daemon_settings) -> Daemon."""
    started: list[Daemon] = []
    request.node._workerd_daemons = started

    def factory(programs: str = "", *, start: bool = True, name: str = "w", **settings: Any) -> Daemon:
        d = Daemon(tmp_path, name)
        started.append(d)
        d.write_config(programs, **settings)
        if start:
            d.start()
        return d

    yield factory
    for d in reversed(started):
        d.teardown()


# -- small shared checks ----------------------------------------------------------


def one_line(text: str) -> str:
    """The text is exactly one non-empty line; returns it."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}: {text!r}"
    assert "Traceback" not in text
    return lines[0]


def socket_mode(path: Path) -> int:
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode), f"{path} is not a socket"
    return stat.S_IMODE(st.st_mode)


TOML_POS = re.compile(r"\.toml:\d+:\d+: ")
