"""Samples the workers whose programs have watched limits (memory, cpu_percent).

One pass over /proc per `sample_interval` for all of them (not a task per process),
plus the PSS of the trees whose RSS nears their memory limit (core.limits.needs_pss),
and only while some program has such a limit: a daemon without watched limits sets
no timer at all. The judgement is the core's (`core.limits.check`); a limit that
fires becomes a LimitExceeded event for the slot.
"""

from __future__ import annotations

import asyncio

from workerd.core.events import LimitExceeded
from workerd.core.limits import Reading, Watch, check, needs_pss
from workerd.core.states import State
from workerd.process.clock import Clock
from workerd.process.procstat import tree_usage, trees_pss
from workerd.runtime.supervisor import Supervisor


class LimitWatcher:
    def __init__(self, supervisor: Supervisor, clock: Clock) -> None:
        self._supervisor = supervisor
        self._clock = clock
        self._history: dict[int, tuple[Reading, ...]] = {}
        self._timer: asyncio.TimerHandle | None = None
        #: Limits that fired, by (program, limit name), for metrics.
        self.fired: dict[tuple[str, str], int] = {}
        #: Passes over the workers so far: status shows that the limits are being watched.
        self.samples = 0

    def update(self) -> None:
        """Start or stop sampling after the config changed."""
        watched = any(p.config.limits.watched for p in self._supervisor.programs.values())
        if watched and self._timer is None:
            self._arm()
        elif not watched and self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._history.clear()

    def _arm(self) -> None:
        interval = self._supervisor.config.daemon.sample_interval
        self._timer = self._clock.call_at(self._clock.now() + interval, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.sample()
        self.update()

    def sample(self) -> None:
        self.samples += 1
        targets = {
            slot.pid: (program, slot)
            for current in self._supervisor.programs.values()
            for program in current.generations()
            if program.config.limits.watched
            for slot in program.slots.values()
            if slot.pid is not None and slot.state in (State.STARTING, State.RUNNING)
        }
        table = self._supervisor.processes()
        usage = tree_usage(table, set(targets))
        watches = {pid: Watch(p.config.limits.memory, p.config.limits.cpu_percent, p.config.limits.cpu_window)
                   for pid, (p, _) in targets.items()}
        pss = trees_pss(table, {pid for pid, tree in usage.items() if needs_pss(watches[pid], tree.rss)})
        now = self._clock.now()
        history: dict[int, tuple[Reading, ...]] = {}
        for pid, (program, slot) in targets.items():
            tree = usage[pid]
            if not tree.processes:
                continue  # exited since: the reaper has the news
            reading = Reading(now, tree.rss, tree.cpu, pss.get(pid))
            history[pid], exceeded = check(watches[pid], self._history.get(pid, ()), reading)
            if exceeded is not None:
                key = (program.name, exceeded.limit)
                self.fired[key] = self.fired.get(key, 0) + 1
                self._supervisor.deliver(program, slot.instance, LimitExceeded(pid, exceeded.reason))
        self._history = history
