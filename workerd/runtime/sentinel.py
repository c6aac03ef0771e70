"""Kills the workers' process groups if the daemon dies, even by SIGKILL.

A parent-death signal reaches only a worker's main process, not the children it
started. So at start the daemon forks a tiny sentinel that holds the read end of a
pipe; the daemon tells it each process group it creates ("+pgid") and each one it has
cleared ("-pgid"). When the pipe reaches EOF — the daemon is gone, however it died —
the sentinel SIGKILLs every group still listed and exits. On a clean shutdown the
list is empty by then, so it exits having killed nothing.
"""

from __future__ import annotations

import os
import signal


class Sentinel:
    def __init__(self) -> None:
        read_fd, self._write_fd = os.pipe2(os.O_CLOEXEC)
        self.pid = os.fork()
        if self.pid == 0:
            try:
                # Hold nothing of the daemon's (above all not its control socket,
                # which would then look alive after the daemon died).
                os.closerange(3, read_fd)
                os.closerange(read_fd + 1, 65536)
                _watch(read_fd)
            finally:
                os._exit(0)
        os.close(read_fd)

    def track(self, pgid: int) -> None:
        self._send(f"+{pgid}\n")

    def forget(self, pgid: int) -> None:
        self._send(f"-{pgid}\n")

    def _send(self, line: str) -> None:
        try:
            os.write(self._write_fd, line.encode())
        except OSError:
            pass  # the sentinel is gone: nothing left to protect with it

    def close(self) -> None:
        os.close(self._write_fd)


def _watch(read_fd: int) -> None:
    # Shutdown signals are for the daemon; the sentinel leaves only on EOF.
    for signo in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGQUIT):
        signal.signal(signo, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.set_blocking(read_fd, True)
    groups: set[int] = set()
    pending = b""
    while True:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            pgid = int(line[1:])
            if line[:1] == b"+":
                groups.add(pgid)
            else:
                groups.discard(pgid)
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
