"""Carries out the core's actions against the OS; decides nothing.

Spawn makes the process and wires up what the slot owns (output pipe, exec-status
pipe, reaper watch, sentinel entry); signals go to process groups, and a group that
is already gone is not an error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from dataclasses import dataclass
from typing import Callable

from workerd.core.actions import Action, KillGroup, SignalGroup, Spawn
from workerd.core.events import Event, Exited, Spawned, SpawnFailed
from workerd.runtime.output import OutputPipe, ProgramLog
from workerd.runtime.reaper import ExitStatus, Reaper
from workerd.runtime.sentinel import Sentinel
from workerd.runtime.spawn import ProcessSpec, read_exec_status, spawn

log = logging.getLogger("workerd")


@dataclass
class SlotContext:
    """What effects need to know about the slot an action belongs to."""

    program: str
    instance: int
    spec: Callable[[], ProcessSpec]
    sink: ProgramLog
    #: Feeds an event back to the supervisor for this slot.
    deliver: Callable[[Event], None]


class Effects:
    def __init__(self, loop: asyncio.AbstractEventLoop, reaper: Reaper, sentinel: Sentinel | None) -> None:
        self._loop = loop
        self._reaper = reaper
        self._sentinel = sentinel
        self.pipes: set[OutputPipe] = set()
        #: Set whenever no output pipe is open (all workers' last lines written).
        self.pipes_drained = asyncio.Event()
        self.pipes_drained.set()
        self._table: dict[type, Callable[[Action, SlotContext], Event | None]] = {
            Spawn: self._spawn,  # type: ignore[dict-item]
            SignalGroup: self._signal_group,  # type: ignore[dict-item]
            KillGroup: self._kill_group,  # type: ignore[dict-item]
        }

    def execute(self, action: Action, ctx: SlotContext) -> Event | None:
        return self._table[type(action)](action, ctx)

    def _spawn(self, action: Spawn, ctx: SlotContext) -> Event:
        try:
            child = spawn(ctx.spec())
        except OSError as exc:
            return SpawnFailed(f"fork: {exc.strerror}")
        if self._sentinel is not None:
            self._sentinel.track(child.pid)
        self.pipes.add(OutputPipe(self._loop, child.output_fd, ctx.instance, ctx.sink, self._pipe_closed))
        self.pipes_drained.clear()
        exec_status = _ExecStatus(self._loop, child.status_fd)

        def on_exit(status: ExitStatus) -> None:
            failure = exec_status.settle()
            if failure is not None:
                ctx.deliver(SpawnFailed(failure, status.pid))
            else:
                ctx.deliver(Exited(status.pid, status.success, status.describe()))
            if self._sentinel is not None:
                self._sentinel.forget(status.pid)

        self._reaper.watch(child.pid, on_exit)
        return Spawned(child.pid)

    def _pipe_closed(self, pipe: OutputPipe) -> None:
        self.pipes.discard(pipe)
        if not self.pipes:
            self.pipes_drained.set()

    def _signal_group(self, action: SignalGroup, ctx: SlotContext) -> None:
        try:
            os.killpg(action.pgid, action.signal)
        except ProcessLookupError:
            pass
        except OSError as exc:
            log.error("%s[%d]: cannot signal group %d: %s", ctx.program, ctx.instance, action.pgid, exc.strerror)
        return None

    def _kill_group(self, action: KillGroup, ctx: SlotContext) -> None:
        return self._signal_group(SignalGroup(action.pgid, signal.SIGKILL), ctx)


class _ExecStatus:
    """Watches a child's exec-status pipe until EOF (exec happened) or an error text."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self._loop = loop
        self._fd = fd
        self._failure: str | None = None
        loop.add_reader(fd, self.settle)

    def settle(self) -> str | None:
        """Read the outcome if not yet read; return the failure text, if any. Called
        when the pipe is readable and again when the child is reaped, whichever is first."""
        if self._fd >= 0:
            self._failure = read_exec_status(self._fd)
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
        return self._failure
