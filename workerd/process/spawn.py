"""The only place a child process is made.

subprocess.Popen does the fork and exec in C (vfork), so making a worker costs the
daemon a fraction of a millisecond and runs no Python in the child. What Popen
cannot do before the command starts is done by small util-linux and coreutils
programs that the child execs on its way to the command, each replacing the one
before (same pid, process group and pipes), in this order:

    prlimit --nofile=... --   kernel limits, set while still root, so they may be raised
                              (and the soft open-file limit the daemon raised, given back)
    nice -n N --              also while root: a negative nice needs it
    setpriv [--reuid --regid --init-groups] --pdeathsig KILL --
                              the user switch, then the parent-death signal
                              (a user switch would clear it)
    the command

Popen only makes the process: the reaper alone waits for it (see `_disown`).
`spawn_helper` makes the other kind of child, a source's helper (a `command`
source's command, the SQS probe), the same way, with separate pipes; `spawn_reader`
makes the sentinel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from workerd.config.model import LimitsConfig
from workerd.config.preflight import chdir_problem, exec_problem
from workerd.config.schema import RLIMITS
from workerd.process.nofile import workers_soft_limit

SETPRIV = shutil.which("setpriv")
PRLIMIT = shutil.which("prlimit")
NICE = shutil.which("nice")

@dataclass(frozen=True)
class ProcessSpec:
    argv: Sequence[str]
    env: Mapping[str, str]
    directory: Path | None = None
    uid: int | None = None
    gid: int | None = None
    user: str | None = None
    umask: int | None = None
    nice: int = 0
    limits: LimitsConfig = LimitsConfig()


@dataclass(frozen=True)
class Child:
    pid: int
    #: Read end of the pipe carrying the child's stdout and stderr.
    output_fd: int


@dataclass(frozen=True)
class Helper:
    pid: int
    #: The daemon's ends of the child's stdin, stdout and stderr, non-blocking.
    stdin_fd: int
    stdout_fd: int
    stderr_fd: int


class SpawnError(Exception):
    """The process could not be made; the message is the OS error, for status."""


def spawn(spec: ProcessSpec) -> Child:
    """Start `spec` as the leader of a new session and process group."""
    _check_executable(spec)
    argv = _argv(spec)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out_w,
            stderr=out_w,
            env=dict(spec.env),
            cwd=spec.directory,
            umask=-1 if spec.umask is None else spec.umask,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        os.close(out_r)
        raise SpawnError(_os_error(exc, spec)) from None
    finally:
        os.close(out_w)
    _disown(proc)
    os.set_blocking(out_r, False)
    return Child(pid=proc.pid, output_fd=out_r)


def spawn_helper(argv: Sequence[str]) -> Helper:
    """Start a source's helper as the leader of a new session and process group, as the
    daemon's user with its environment, with a pipe for each of stdin, stdout and
    stderr (a source reads its answer from stdout and its complaint from stderr)."""
    spec = ProcessSpec(argv=argv, env=os.environ)
    _check_executable(spec)
    full = _argv(spec)
    in_r, in_w = os.pipe2(os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        proc = subprocess.Popen(
            full, stdin=in_r, stdout=out_w, stderr=err_w, env=dict(spec.env), start_new_session=True, close_fds=True
        )
    except OSError as exc:
        for fd in (in_w, out_r, err_r):
            os.close(fd)
        raise SpawnError(_os_error(exc, spec)) from None
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    _disown(proc)
    for fd in (in_w, out_r, err_r):
        os.set_blocking(fd, False)
    return Helper(proc.pid, in_w, out_r, err_r)


def spawn_reader(argv: Sequence[str], stdin_fd: int) -> int:
    """Start argv as the leader of a new session that reads `stdin_fd`, its output
    discarded, and return its pid: the sentinel. No exec chain: it must outlive the
    daemon (no parent-death signal) to do its job."""
    proc = subprocess.Popen(argv, stdin=stdin_fd, stdout=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    _disown(proc)
    return proc.pid


def _argv(spec: ProcessSpec) -> list[str]:
    if SETPRIV is None:
        raise SpawnError("setpriv not found: install util-linux")
    argv = [SETPRIV, *_identity(spec), "--pdeathsig", "KILL", "--", *spec.argv]
    if spec.nice:
        if NICE is None:
            raise SpawnError("nice not found: install coreutils")
        argv = [NICE, "-n", str(spec.nice - os.getpriority(os.PRIO_PROCESS, 0)), "--", *argv]
    rlimits = _rlimits(spec.limits)
    if rlimits:
        if PRLIMIT is None:
            raise SpawnError("prlimit not found: install util-linux")
        argv = [PRLIMIT, *rlimits, "--", *argv]
    return argv


def _identity(spec: ProcessSpec) -> list[str]:
    """setpriv's options to become the program's user, with the groups a login gets."""
    uid = os.geteuid() if spec.uid is None else spec.uid
    gid = os.getegid() if spec.gid is None else spec.gid
    if (uid, gid) == (os.geteuid(), os.getegid()):
        return []
    if os.geteuid() != 0:
        raise SpawnError(f"switch to user {spec.user or uid}: only root can run workers as another user")
    groups = ["--init-groups"] if spec.user is not None else ["--clear-groups"]
    return [f"--reuid={uid}", f"--regid={gid}", *groups]


def _rlimits(limits: LimitsConfig) -> list[str]:
    """soft = hard = the value, except for CPU time: the kernel sends SIGXCPU at the soft
    limit but SIGKILL at the hard one, so the hard limit is one CPU second later. Without
    open_files, the soft limit on open files the daemon was started with (process/nofile.py)."""
    options = []
    for name, option in RLIMITS.items():
        value = getattr(limits, name)
        if value is not None:
            hard = int(value) + 1 if name == "cpu_time" else int(value)
            options.append(f"{option}={int(value)}:{hard}")
    soft = workers_soft_limit()
    if limits.open_files is None and soft is not None:
        options.append(f"{RLIMITS['open_files']}={soft}:")
    return options


def _disown(proc: subprocess.Popen[bytes]) -> None:
    """Popen would waitpid() this child itself when the object is collected (through
    subprocess._active), stealing the exit status from the reaper. Marking it as
    already waited for makes Popen leave the child alone; the reaper waits for it."""
    proc.returncode = 0


def _check_executable(spec: ProcessSpec) -> None:
    """Refuse a missing directory or a command that cannot be executed, with the OS error
    as the reason, as chdir and exec would: they happen behind setpriv, which could only
    print it."""
    problem = chdir_problem(spec.directory) or exec_problem(
        spec.argv[0], spec.directory, spec.env.get("PATH", os.defpath))
    if problem is not None:
        raise SpawnError(problem)


def _os_error(exc: OSError, spec: ProcessSpec) -> str:
    if spec.directory is not None and exc.filename == str(spec.directory):
        return f"chdir {spec.directory}: {exc.strerror}"
    return f"exec {exc.filename or spec.argv[0]}: {exc.strerror}"
