"""Kills the workers' process groups if the daemon dies, even by SIGKILL.

A parent-death signal reaches only a worker's main process, not the children it
started. So at start the daemon runs a sentinel: a few lines of /bin/sh (about a
megabyte of memory, not a second Python) that reads a pipe from the daemon. The
daemon writes each process group it creates ("+pgid") and each one it has cleared
("-pgid"). When the pipe reaches EOF — the daemon is gone, however it died — the
sentinel SIGKILLs every group still listed and exits. On a clean shutdown the list is
empty by then, so it exits having killed nothing. It has a session of its own, so a
signal to the daemon's process group (Ctrl-C, `kill -9 -PGID`) does not reach it.

The daemon keeps the list too, so a sentinel that dies (the OOM killer, an operator's
kill) is replaced by a new one that is handed every group still listed: at once the
first time, then after 1 s, 2 s, 4 s ... up to a minute while it keeps dying.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from workerd.core.backoff import Backoff
from workerd.exit_status import ExitStatus
from workerd.process.clock import Clock
from workerd.process.reaper import Reaper
from workerd.process.spawn import spawn_reader

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


#: A minute up ends a streak of deaths.
RESTART_BACKOFF = Backoff(initial=1.0, factor=2.0, maximum=60.0, jitter=0.0, reset=60.0)


def restart_delay(streak: int, ran: float) -> tuple[float, int]:
    """After a sentinel that ran `ran` seconds died: how long to wait before the next one,
    and the new count of deaths in a row."""
    if ran >= RESTART_BACKOFF.reset:
        streak = 0
    delay = RESTART_BACKOFF.delay(streak - 1, 0.5) if streak else 0.0
    return delay, streak + 1


class Sentinel:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        #: Every process group listed, kept to hand to a new sentinel.
        self._tracked: set[int] = set()
        self._write_fd: int | None = None
        #: None while no sentinel runs (between a death and the restart).
        self.pid: int | None = None
        self.restarts = 0
        self._streak = 0
        self._start()

    def _start(self) -> None:
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        try:
            self.pid = spawn_reader(["/bin/sh", "-c", _SCRIPT, "workerd-sentinel"], read_fd)
        except OSError:
            os.close(write_fd)
            raise
        finally:
            os.close(read_fd)
        self._write_fd = write_fd
        self._started_at = self._clock.now()
        self._send("".join(f"+{pgid}\n" for pgid in self._tracked))

    def track(self, pgid: int) -> None:
        self._tracked.add(pgid)
        self._send(f"+{pgid}\n")

    def forget(self, pgid: int) -> None:
        self._tracked.discard(pgid)
        self._send(f"-{pgid}\n")

    @property
    def tracked(self) -> int:
        return len(self._tracked)

    def _send(self, lines: str) -> None:
        data = lines.encode()
        try:
            # A hand-over may pass PIPE_BUF, and then a signal can cut the write short.
            while data and self._write_fd is not None:
                data = data[os.write(self._write_fd, data):]
        except OSError:
            pass  # the sentinel is gone: the daemon hears of it when it reaps it

    def lost(self) -> float:
        """Its process died: returns how long to wait before `restart()`."""
        self.close()
        self.pid = None
        delay, self._streak = restart_delay(self._streak, self._clock.now() - self._started_at)
        return delay

    def restart(self) -> None:
        """Start a new sentinel and hand it every group listed (OSError if it cannot be made)."""
        self._started_at = self._clock.now()  # if it cannot be made, lost() counts a death in a row
        self._start()
        self.restarts += 1

    def close(self) -> None:
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None


def watch_child(reaper: Reaper, sentinel: Sentinel | None, pid: int, on_exit: Callable[[ExitStatus], None]) -> None:
    """Watch a child the daemon just made, which leads its own process group: the
    sentinel kills the group if the daemon dies, until the reaper sees the child exit;
    then `on_exit` runs (and clears the group), and the sentinel lets the group go.
    Called in the same step as the child was made, before the reaper can have seen it."""
    if sentinel is not None:
        sentinel.track(pid)

    def exited(status: ExitStatus) -> None:
        on_exit(status)
        if sentinel is not None:
            sentinel.forget(status.pid)

    reaper.watch(pid, exited)
