"""Carries out the core's actions against the OS; decides nothing.

Spawn makes the process and wires up what the slot owns (output pipe, reaper
watch, sentinel entry); signals go to process groups, and a group that
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
from workerd.runtime.cgroups import CgroupTree
from workerd.runtime.output import OutputPipe, ProgramLog
from workerd.runtime.procstat import session_members
from workerd.runtime.reaper import ExitStatus, Reaper
from workerd.runtime.sentinel import Sentinel
from workerd.runtime.spawn import ProcessSpec, SpawnError, spawn

log = logging.getLogger("workerd")

#: How soon after a worker's group is killed the rest of its session is swept.
SWEEP_DELAY = 0.1


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
    def __init__(self, loop: asyncio.AbstractEventLoop, reaper: Reaper, sentinel: Sentinel | None,
                 cgroup_tree: CgroupTree | None) -> None:
        self._loop = loop
        self._cgroup_tree = cgroup_tree
        #: Sessions whose stragglers the next sweep kills.
        self._to_sweep: set[int] = set()
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
        spec = ctx.spec()
        try:
            child = spawn(spec)
        except SpawnError as exc:
            return SpawnFailed(str(exc))
        if self._cgroup_tree is not None:
            self._cgroup_tree.place(ctx.program, ctx.instance, child.pid, spec.limits)
        if self._sentinel is not None:
            self._sentinel.track(child.pid)
        self.pipes.add(OutputPipe(self._loop, child.output_fd, ctx.instance, ctx.sink, self._pipe_closed))
        self.pipes_drained.clear()

        def on_exit(status: ExitStatus) -> None:
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
        """SIGKILL the worker's process group at once; whatever of its session (its whole
        tree: the worker leads the session) moved to a process group of its own goes
        in a sweep shortly after. The sweep reads all of /proc, so it runs once for every
        session collected in SWEEP_DELAY, off the critical path of the restart (whose
        new worker is exec'ing meanwhile)."""
        self._signal_group(SignalGroup(action.pgid, signal.SIGKILL), ctx)
        if not self._to_sweep:
            self._loop.call_later(SWEEP_DELAY, self._sweep_sessions)
        self._to_sweep.add(action.pgid)

    def _sweep_sessions(self) -> None:
        sessions, self._to_sweep = self._to_sweep, set()
        for pid in session_members(sessions):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
