"""The only place wait*() is called.

One mechanism for every child: SIGCHLD. Its handler only schedules `reap()` on the
loop; `reap()` collects every exited child with waitpid(-1, WNOHANG) and routes
each pid to whoever watches it (a worker slot, the sentinel) or logs it as a reaped
orphan: the daemon is a child subreaper, so a worker's orphaned children land here.
(pidfds would give the same wakeup per child at the cost of one descriptor each;
SIGCHLD already covers the orphans, so it covers our own children too.)
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

from workerd.exit_status import ExitStatus

log = logging.getLogger("workerd")


class Reaper:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._watchers: dict[int, Callable[[ExitStatus], None]] = {}
        self._scheduled = False

    def install(self) -> None:
        signal.signal(signal.SIGCHLD, self._on_sigchld)

    def watch(self, pid: int, callback: Callable[[ExitStatus], None]) -> None:
        self._watchers[pid] = callback

    def watches(self, pid: int) -> bool:
        """Whether `pid` is a child the daemon made (every one is watched), not an orphan."""
        return pid in self._watchers

    def _on_sigchld(self, signo: int, frame: object) -> None:
        # A signal handler only enqueues: the reaping happens on the loop.
        if not self._scheduled and not self._loop.is_closed():
            self._scheduled = True
            self._loop.call_soon_threadsafe(self.reap)

    def reap(self) -> None:
        self._scheduled = False
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            exit_status = ExitStatus.from_wait(pid, status)
            callback = self._watchers.pop(pid, None)
            if callback is None:
                log.debug("reaped orphan %d (%s)", pid, exit_status.describe())
            else:
                callback(exit_status)

    @property
    def watched(self) -> int:
        return len(self._watchers)
