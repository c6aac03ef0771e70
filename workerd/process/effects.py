"""Carries out the core's actions against the OS; decides nothing.

Spawn makes the process and wires up what the slot owns (output pipe, reaper
watch, sentinel entry, strays); a stop signal goes to the main process or to its
process group, as the core says, and a process or group that is already gone is not
an error. A worker's stop signal and its kill reach its strays too (see strays.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass
from typing import Protocol

from workerd.core.actions import Action, EndGroup, KillGroup, SignalGroup, SignalMain, Spawn
from workerd.core.events import Event, Exited, Spawned, SpawnFailed
from workerd.core.strays import Proc
from workerd.exit_status import ExitStatus
from workerd.process.cgroups import CgroupTree
from workerd.process.clock import Clock
from workerd.process.output import OutputPipe, ProgramLog
from workerd.process.procstat import ProcStat, processes
from workerd.process.reaper import Reaper
from workerd.process.sentinel import Sentinel, watch_child
from workerd.process.spawn import ProcessSpec, SpawnError, spawn
from workerd.process.strays import Strays, few

log = logging.getLogger("workerd")

#: How soon after a worker's group is killed the rest of its session (and strays) is swept.
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


class EffectsLike(Protocol):
    """What the supervisor asks of Effects: tests hand it a recording fake instead, which
    mypy checks against this (tests/runtime/fakes.py)."""

    @property
    def pipes(self) -> Set[OutputPipe]: ...

    def execute(self, action: Action, ctx: SlotContext) -> Event | None: ...

    def signal_group(self, pgid: int, signo: int, ctx: SlotContext) -> None: ...

    def processes(self) -> Mapping[int, ProcStat]: ...

    def find_strays(self, procs: Mapping[int, Proc]) -> None: ...


class Effects:
    def __init__(self, loop: asyncio.AbstractEventLoop, clock: Clock, reaper: Reaper, sentinel: Sentinel | None,
                 cgroup_tree: CgroupTree | None) -> None:
        self._loop = loop
        self._clock = clock
        self._cgroup_tree = cgroup_tree
        #: Sessions whose stragglers the next sweep kills.
        self._to_sweep: set[int] = set()
        self._sweep_timer: asyncio.TimerHandle | None = None
        #: Groups whose main process exited during a stop, in their grace ("mixed"), by pgid.
        self._ending: dict[int, tuple[asyncio.TimerHandle, SlotContext]] = {}
        self._reaper = reaper
        self._sentinel = sentinel
        self._strays = Strays(reaper, sentinel)
        self._procs: dict[int, ProcStat] | None = None
        self.pipes: set[OutputPipe] = set()
        #: Set whenever no output pipe is open (all workers' last lines written).
        self.pipes_drained = asyncio.Event()
        self.pipes_drained.set()
        self._table: dict[type, Callable[[Action, SlotContext], Event | None]] = {
            Spawn: self._spawn,  # type: ignore[dict-item]
            SignalGroup: self._signal_group,  # type: ignore[dict-item]
            SignalMain: self._signal_main,  # type: ignore[dict-item]
            EndGroup: self._end_group,  # type: ignore[dict-item]
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
        self._strays.started(child.pid, ctx.program, ctx.instance)
        self.pipes.add(OutputPipe(self._loop, child.output_fd, ctx.instance, ctx.sink, self._pipe_closed))
        self.pipes_drained.clear()

        def on_exit(status: ExitStatus) -> None:
            ctx.deliver(Exited(status.pid, status.success, status.describe()))
            self._sweep_soon(self._strays.exited(status.pid))

        watch_child(self._reaper, self._sentinel, child.pid, on_exit)
        return Spawned(child.pid)

    def _pipe_closed(self, pipe: OutputPipe) -> None:
        self.pipes.discard(pipe)
        if not self.pipes:
            self.pipes_drained.set()

    def _signal_group(self, action: SignalGroup, ctx: SlotContext) -> None:
        """kill_mode "group": the stop signal to the worker's whole group."""
        self._signal_strays(action.pgid, action.signal)
        self.signal_group(action.pgid, action.signal, ctx)

    def _signal_main(self, action: SignalMain, ctx: SlotContext) -> None:
        """kill_mode "mixed": the stop signal to the worker's main process alone; its
        children are its own to stop (a pool finishes their jobs)."""
        self._signal_strays(action.pid, action.signal)
        try:
            os.kill(action.pid, action.signal)  # not reaped yet: the pid is still the worker's
        except ProcessLookupError:
            pass

    def _signal_strays(self, worker: int, signo: int) -> None:
        """A worker is being stopped: its strays are looked for first, while their ancestry
        is intact, and get its stop signal (they left its session: it cannot stop them)."""
        procs = self.processes(fresh=False)
        self._sweep_soon(self._strays.find(procs))
        self._strays.signal(worker, signo, procs)

    def signal_group(self, pgid: int, signo: int, ctx: SlotContext) -> None:
        """Send a signal to the worker's process group alone."""
        try:
            os.killpg(pgid, signo)
        except ProcessLookupError:
            pass
        except OSError as exc:
            log.error("%s[%d]: cannot signal group %d: %s", ctx.program, ctx.instance, pgid, exc.strerror)

    def _kill_group(self, action: KillGroup, ctx: SlotContext) -> None:
        """SIGKILL the worker's process group and its known strays at once (in a delegated
        cgroup, everything in the slot's cgroup); whatever of its session (its whole tree:
        the worker leads the session) moved to a process group of its own, and any stray
        not known yet, goes in a sweep shortly after. The sweep reads all of /proc, so it
        runs once for every session collected in SWEEP_DELAY, off the critical path of
        the restart (whose new worker is exec'ing meanwhile); a stray found only then is
        an orphan by now, and its environment names its slot (see core/strays.py).
        A stop that ran out of stop_timeout says what it killed."""
        if action.overdue is not None:
            sessions = self._strays.sessions_of(action.pgid) | {action.pgid}
            killed = sum(1 for p in self.processes(fresh=False).values() if p.sid in sessions)
            log.warning("%s[%d]: %s: SIGKILL to %d process%s; raise stop_timeout if jobs run longer",
                        ctx.program, ctx.instance, action.overdue, killed, "" if killed == 1 else "es")
        if self._cgroup_tree is not None:
            self._cgroup_tree.kill(ctx.program, ctx.instance)
        self._kill(action.pgid, ctx)

    def _kill(self, pgid: int, ctx: SlotContext) -> None:
        self.signal_group(pgid, signal.SIGKILL, ctx)
        self._sweep_soon(self._strays.kill(pgid) | {pgid})

    def _end_group(self, action: EndGroup, ctx: SlotContext) -> None:
        """kill_mode "mixed", the main process gone after a stop: what is left of its
        session (its group and any group it made) gets the stop signal, and SIGKILL after
        the grace (not the slot's cgroup then: a restart's new worker is in it). Normally
        nothing is left (a pool waits for its children): an empty group is cleared as
        after a crash, without a read of /proc on the way of each exit of a shutdown."""
        if not _group_exists(action.pgid):
            return self._kill_group(KillGroup(action.pgid), ctx)
        left = {p.pgid for p in self.processes(fresh=False).values() if p.sid == action.pgid}
        for pgid in left:
            self.signal_group(pgid, action.signal, ctx)
        handle = self._clock.call_at(self._clock.now() + action.grace, lambda: self._end(action.pgid))
        self._ending[action.pgid] = (handle, ctx)

    def _end(self, pgid: int) -> None:
        """A grace is over: SIGKILL what is left. A live child of the daemon with that pid
        means the session is long gone and the pid reused (as a new worker's group)."""
        handle, ctx = self._ending.pop(pgid)
        handle.cancel()
        if not self._reaper.watches(pgid):
            self._kill(pgid, ctx)

    def finish(self) -> None:
        """At the end of a shutdown: what is still in its grace is killed now, then swept;
        the loop ends before a timer would."""
        for pgid in list(self._ending):
            self._end(pgid)
        self.sweep()

    def find_strays(self, procs: Mapping[int, Proc]) -> None:
        """Look for strays in a read of /proc (see strays.py): status and the limit
        watcher hand theirs over."""
        self._sweep_soon(self._strays.find(procs))

    def processes(self, fresh: bool = True) -> dict[int, ProcStat]:
        """A read of /proc. A batch of stops in one step of the loop (a shutdown stops
        every worker at once) shares one with `fresh=False`; every other reader (status,
        the watcher, the sweep: each a step of its own, which a timer may run before the
        cache is dropped) reads anew."""
        if fresh or self._procs is None:
            self._procs = processes()
            self._loop.call_soon(self._forget_processes)
        return self._procs

    def _forget_processes(self) -> None:
        self._procs = None

    def _sweep_soon(self, sessions: set[int]) -> None:
        self._to_sweep |= sessions
        if self._to_sweep and self._sweep_timer is None:
            self._sweep_timer = self._clock.call_at(self._clock.now() + SWEEP_DELAY, self.sweep)

    def sweep(self) -> None:
        """SIGKILL every member of the sessions collected, and of abandoned orphans' sessions.
        While a sweep kills abandoned orphans, another follows SWEEP_DELAY later: a tree that
        keeps making sessions (setsid in a loop) forks new orphans between a read of /proc
        and the kills, and is gone within a few rounds. One log line per sweep, however many
        sessions. The daemon calls it once more at the end of a shutdown, so nothing waits
        for a timer."""
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None
        procs = self.processes()
        abandoned = self._strays.find(procs)
        sessions, self._to_sweep = self._to_sweep | abandoned, set()
        if abandoned:
            log.warning("killing %d session(s) of orphans whose worker is gone (%s)", len(abandoned),
                        few(abandoned))
        killed = 0
        for pid, proc in procs.items():
            if proc.sid in sessions:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except ProcessLookupError:
                    pass
        if abandoned and killed and self._sweep_timer is None:
            self._sweep_timer = self._clock.call_at(self._clock.now() + SWEEP_DELAY, self.sweep)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # a member runs as another user: the group is there
    return True
