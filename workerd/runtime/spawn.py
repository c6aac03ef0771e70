"""The only place a child process is made.

fork + exec by hand rather than subprocess: the child must set a parent-death signal
*after* switching user (setuid clears it), and subprocess.Popen keeps its own list of
children that it waits on, which would race the reaper. The exec result comes back
on a close-on-exec pipe: EOF means the exec happened, bytes are the error text.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from workerd.runtime.prctl import set_parent_death_signal

_DEVNULL = os.devnull


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


@dataclass
class Child:
    pid: int
    #: Read end of the pipe carrying the child's stdout and stderr.
    output_fd: int
    #: Read end of the exec-status pipe: EOF on success, error text on failure.
    status_fd: int


def spawn(spec: ProcessSpec) -> Child:
    """Fork and exec `spec` in a new process group. Raises OSError if fork itself fails;
    every failure after the fork (chdir, setuid, exec) arrives on `status_fd`."""
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    env = {k: v for k, v in spec.env.items()}
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        for fd in (out_r, out_w, status_r, status_w):
            os.close(fd)
        raise
    if pid == 0:  # the child: never return into the daemon's code
        try:
            _exec_child(spec, env, parent, out_w, status_w)
        except BaseException as exc:  # noqa: BLE001 - anything here is a failed start
            _report(status_w, exc)
        os._exit(127)
    # Also set the group from the parent, so a signal to the group cannot race the
    # child's own setpgid.
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass  # the child already exec'd (EACCES) or died: its own setpgid stands
    os.close(out_w)
    os.close(status_w)
    os.set_blocking(out_r, False)
    os.set_blocking(status_r, False)
    return Child(pid=pid, output_fd=out_r, status_fd=status_r)


def _exec_child(spec: ProcessSpec, env: dict[str, str], parent: int, out_w: int, status_w: int) -> None:
    os.setpgid(0, 0)
    for signo in signal.valid_signals():
        if signo not in (signal.SIGKILL, signal.SIGSTOP):
            try:
                signal.signal(signo, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    null = os.open(_DEVNULL, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    # Close whatever the daemon inherited from its own parent without CLOEXEC;
    # the daemon's own descriptors are all close-on-exec already.
    os.closerange(3, status_w)
    os.closerange(status_w + 1, 65536)
    step = "nice"
    try:
        if spec.nice:
            os.setpriority(os.PRIO_PROCESS, 0, spec.nice)
        if spec.gid is not None:
            step = f"setgid {spec.gid}"
            if spec.user is not None and os.getuid() == 0:
                os.initgroups(spec.user, spec.gid)
            os.setgid(spec.gid)
        if spec.uid is not None:
            step = f"setuid {spec.uid}"
            os.setuid(spec.uid)
        if spec.umask is not None:
            os.umask(spec.umask)
        if spec.directory is not None:
            step = f"chdir {spec.directory}"
            os.chdir(spec.directory)
        step = "parent death signal"
        # After the user switch: setuid clears the parent-death signal.
        set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(0)  # the daemon died while we were starting: nothing to run for
        step = f"exec {spec.argv[0]}"
        os.execvpe(spec.argv[0], list(spec.argv), env)
    except OSError as exc:
        raise OSError(exc.errno, f"{step}: {exc.strerror}") from None


def _report(status_w: int, exc: BaseException) -> None:
    text = exc.args[1] if isinstance(exc, OSError) and len(exc.args) > 1 else repr(exc)
    try:
        os.write(status_w, str(text).encode("utf-8", "replace")[:4096])
    except OSError:
        pass


def read_exec_status(status_fd: int) -> str | None:
    """Return the child's failure text, or None when the exec succeeded (EOF)."""
    chunks = []
    while True:
        try:
            chunk = os.read(status_fd, 4096)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace") or None
