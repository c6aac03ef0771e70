"""The only place a child process is made.

subprocess.Popen does the fork and exec in C (vfork when no user switch is asked
for), so making a worker costs the daemon a fraction of a millisecond and runs no
Python in the child. What Popen cannot do before the exec is done by small
util-linux/coreutils programs that the child execs on its way to the command:
`setpriv --pdeathsig KILL` (the parent-death signal, set after Popen's user switch,
which would clear it) and `nice -n` — each exec replaces the previous one, so the
worker's pid, process group and pipes are the same throughout.

Popen only makes the process: the reaper alone waits for it (see `_disown`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from workerd.runtime.prctl import set_parent_death_signal

SETPRIV = shutil.which("setpriv")
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


@dataclass(frozen=True)
class Child:
    pid: int
    #: Read end of the pipe carrying the child's stdout and stderr.
    output_fd: int


class SpawnError(Exception):
    """The process could not be made; the message is the OS error, for status."""


def spawn(spec: ProcessSpec) -> Child:
    """Start `spec` as the leader of a new session and process group."""
    _check_executable(spec)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    try:
        proc = subprocess.Popen(
            _argv(spec),
            stdin=subprocess.DEVNULL,
            stdout=out_w,
            stderr=out_w,
            env=dict(spec.env),
            cwd=spec.directory,
            user=None if spec.uid in (None, os.geteuid()) else spec.uid,
            group=None if spec.gid in (None, os.getegid()) else spec.gid,
            extra_groups=_groups(spec),
            umask=-1 if spec.umask is None else spec.umask,
            start_new_session=True,
            close_fds=True,
            preexec_fn=None if SETPRIV else _parent_death_signal,
        )
    except OSError as exc:
        os.close(out_r)
        raise SpawnError(_describe(exc, spec)) from None
    finally:
        os.close(out_w)
    _disown(proc)
    os.set_blocking(out_r, False)
    return Child(pid=proc.pid, output_fd=out_r)


def _argv(spec: ProcessSpec) -> list[str]:
    argv = list(spec.argv)
    if spec.nice and NICE:
        argv = [NICE, "-n", str(spec.nice - os.getpriority(os.PRIO_PROCESS, 0)), "--", *argv]
    if SETPRIV:
        argv = [SETPRIV, "--pdeathsig", "KILL", "--", *argv]
    return argv


def _groups(spec: ProcessSpec) -> list[int] | None:
    """The user's supplementary groups, as a login would set them (root only)."""
    if spec.user is None or spec.gid is None or os.geteuid() != 0:
        return None
    return os.getgrouplist(spec.user, spec.gid)


def _parent_death_signal() -> None:
    """Fallback where setpriv is missing: runs in the child, after the user switch."""
    set_parent_death_signal(signal.SIGKILL)


def _disown(proc: subprocess.Popen[bytes]) -> None:
    """Popen would waitpid() this child itself when the object is collected (through
    subprocess._active), stealing the exit status from the reaper. Marking it as
    already waited for makes Popen leave the child alone; the reaper waits for it."""
    proc.returncode = 0


def _check_executable(spec: ProcessSpec) -> None:
    """Refuse a command that cannot be executed with the OS error as the reason, as the
    exec itself would: the exec happens behind setpriv, which could only print it."""
    command = spec.argv[0]
    if "/" in command:
        path = Path(command) if os.path.isabs(command) else (spec.directory or Path.cwd()) / command
        if not path.exists():
            raise SpawnError(f"exec {command}: No such file or directory")
        if path.is_dir() or not os.access(path, os.X_OK):
            raise SpawnError(f"exec {command}: Permission denied")
    elif shutil.which(command, path=spec.env.get("PATH", os.defpath)) is None:
        raise SpawnError(f"exec {command}: not found in PATH")


def _describe(exc: OSError, spec: ProcessSpec) -> str:
    if spec.directory is not None and exc.filename == str(spec.directory):
        return f"chdir {spec.directory}: {exc.strerror}"
    if exc.filename is None and isinstance(exc, PermissionError) and spec.uid is not None:
        return f"switch to user {spec.user or spec.uid}: {exc.strerror}"
    return f"exec {spec.argv[0]}: {exc.strerror}"
