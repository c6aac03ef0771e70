"""The daemon's Launcher for the sources' children (see sources/child.py).

A child comes from spawn.py like every other (setpriv's parent-death signal, a new
session), its process group is handed to the sentinel while it lives, and its exit
arrives from the Reaper, the only caller of wait*(): the source awaits a future.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from workerd.runtime.reaper import ExitStatus, Reaper
from workerd.runtime.sentinel import Sentinel
from workerd.runtime.spawn import SpawnError, spawn_helper
from workerd.sources.base import SourceError
from workerd.sources.child import ChildExit, Launched


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
        exited: asyncio.Future[ChildExit] = self._loop.create_future()
        sentinel = self._sentinel
        if sentinel is not None:
            sentinel.track(helper.pid)

        def on_exit(status: ExitStatus) -> None:
            if sentinel is not None:
                sentinel.forget(status.pid)
            if not exited.done():
                exited.set_result(ChildExit(status.code, status.signal))

        # Watched in the same step as it was made: the reaper cannot have seen it yet.
        self._reaper.watch(helper.pid, on_exit)
        return Launched(helper.pid, helper.stdin_fd, helper.stdout_fd, helper.stderr_fd, exited)
