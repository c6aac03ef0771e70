"""The daemon's Launcher for the sources' children (see sources/child.py).

A child comes from spawn.py like every other (setpriv's parent-death signal, a new
session), its process group is handed to the sentinel while it lives, and its exit
arrives from the Reaper, the only caller of wait*(): the source awaits a future.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from workerd.exit_status import ExitStatus
from workerd.process.reaper import Reaper
from workerd.process.sentinel import Sentinel, watch_child
from workerd.process.spawn import SpawnError, spawn_helper
from workerd.sources.base import SourceError
from workerd.sources.child import Launched


class ReapedLauncher:
    def __init__(self, loop: asyncio.AbstractEventLoop, reaper: Reaper, sentinel: Sentinel | None) -> None:
        self._loop = loop
        self._reaper = reaper
        self._sentinel = sentinel

    def launch(self, argv: Sequence[str]) -> Launched:
        try:
            helper = spawn_helper(argv)
        except SpawnError as exc:
            raise SourceError(str(exc)) from None
        exited: asyncio.Future[ExitStatus] = self._loop.create_future()

        def on_exit(status: ExitStatus) -> None:
            if not exited.done():
                exited.set_result(status)

        watch_child(self._reaper, self._sentinel, helper.pid, on_exit)
        return Launched(helper.pid, helper.stdin_fd, helper.stdout_fd, helper.stderr_fd, exited)
