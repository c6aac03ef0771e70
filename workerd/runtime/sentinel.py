"""Kills the workers' process groups if the daemon dies, even by SIGKILL.

A parent-death signal reaches only a worker's main process, not the children it
started. So at start the daemon runs a sentinel: a few lines of /bin/sh (about a
megabyte of memory, not a second Python) that reads a pipe from the daemon. The
daemon writes each process group it creates ("+pgid") and each one it has cleared
("-pgid"). When the pipe reaches EOF — the daemon is gone, however it died — the
sentinel SIGKILLs every group still listed and exits. On a clean shutdown the list is
empty by then, so it exits having killed nothing. It has a session of its own, so a
signal to the daemon's process group (Ctrl-C, `kill -9 -PGID`) does not reach it.
"""

from __future__ import annotations

import os
import subprocess

_SCRIPT = r"""
trap '' INT TERM HUP QUIT USR1 USR2
live=' '
while read -r line; do
    pgid=${line#?}
    case $line in
        +*) live="$live$pgid " ;;
        -*) case $live in *" $pgid "*) live="${live%% $pgid *} ${live#* $pgid }" ;; esac ;;
    esac
done
for pgid in $live; do kill -9 "-$pgid" 2>/dev/null; pkill -KILL -s "$pgid" 2>/dev/null; done
"""


class Sentinel:
    def __init__(self) -> None:
        read_fd, self._write_fd = os.pipe2(os.O_CLOEXEC)
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", _SCRIPT, "workerd-sentinel"],
                stdin=read_fd,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            os.close(read_fd)
        proc.returncode = 0  # the reaper waits for it, not Popen (see spawn._disown)
        self.pid = proc.pid

    def track(self, pgid: int) -> None:
        self._send(f"+{pgid}\n")

    def forget(self, pgid: int) -> None:
        self._send(f"-{pgid}\n")

    def _send(self, line: str) -> None:
        try:
            os.write(self._write_fd, line.encode())
        except OSError:
            pass  # the sentinel is gone: the daemon logs that when it reaps it

    def close(self) -> None:
        os.close(self._write_fd)
