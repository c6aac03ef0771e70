"""The facts of every program and slot, and the one place events are applied.

Events arrive from the reaper, timers and commands; `deliver` queues them and
applies them one at a time (`transition`), hands the resulting actions to
`Effects`, feeds any outcome back into the queue, then reconciles each touched
program's wanted count. Nothing here calls the OS directly.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from dataclasses import replace
from typing import Callable, Iterable

from workerd.config.model import Config, ProgramConfig
from workerd.core.diff import diff
from workerd.core.events import (
    Event,
    KillRequested,
    StartRequested,
    StopRequested,
    TimerExpired,
)
from workerd.core.lifecycle import Slot, transition
from workerd.core.reconcile import reconcile
from workerd.core.states import AT_REST, State
from workerd.runtime.clock import Clock
from workerd.runtime.effects import Effects, SlotContext
from workerd.runtime.output import ProgramLog
from workerd.runtime.program import Program
from workerd.runtime.waiters import Waiters

log = logging.getLogger("workerd")

SlotKey = tuple[str, int]


class CommandError(Exception):
    """A command that cannot be carried out (unknown program, bad argument)."""


class Supervisor:
    def __init__(
        self,
        config: Config,
        clock: Clock,
        effects: Effects,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self._clock = clock
        self._effects = effects
        self._rand = rand
        self.programs: dict[str, Program] = {}
        self._timers: dict[SlotKey, asyncio.TimerHandle] = {}
        self._queue: collections.deque[tuple[str, int, Event]] = collections.deque()
        self._draining = False
        self._waiters = Waiters(self.programs)
        self.shutting_down = False
        sinks = _open_sinks(config, config.programs)
        for program_config in config.programs.values():
            self._add(program_config, sinks[program_config.name])

    # -- applying events -------------------------------------------------------------

    def start(self) -> None:
        for program in list(self.programs.values()):
            self._reconcile(program)
        self._drain()

    def deliver(self, name: str, instance: int, event: Event) -> None:
        self._queue.append((name, instance, event))
        self._drain()

    def _drain(self) -> None:
        if self._draining:
            return
        self._draining = True
        try:
            while self._queue:
                name, instance, event = self._queue.popleft()
                program = self.programs.get(name)
                if program is not None:
                    self._apply(program, instance, event)
                    self._reconcile(program)
        finally:
            self._draining = False
        self._waiters.check()

    def _apply(self, program: Program, instance: int, event: Event) -> None:
        old = program.slots.get(instance) or Slot(instance)
        new, actions = transition(old, event, self._clock.now(), program.policy, self._rand)
        program.slots[instance] = new
        if new.state is not old.state:
            _log_transition(program.name, old, new)
        if new.timer_at != old.timer_at:
            self._arm(program.name, new)
        if actions:
            ctx = self._context(program, instance)
            for action in actions:
                outcome = self._effects.execute(action, ctx)
                if outcome is not None:
                    self._queue.append((program.name, instance, outcome))
        if new.state is State.STOPPED and not new.wanted and program.enabled:
            del program.slots[instance]  # scaled away: it no longer exists
        if program.removing and program.at_rest:
            self._remove(program)

    def _arm(self, name: str, slot: Slot) -> None:
        key = (name, slot.instance)
        handle = self._timers.pop(key, None)
        if handle is not None:
            handle.cancel()
        if slot.timer_at is not None:
            self._timers[key] = self._clock.call_at(
                slot.timer_at, lambda: self._on_timer(key)
            )

    def _on_timer(self, key: SlotKey) -> None:
        self._timers.pop(key, None)
        self.deliver(key[0], key[1], TimerExpired())

    def _reconcile(self, program: Program) -> None:
        if program.name not in self.programs:
            return
        for instance, request in reconcile(program.wanted, program.slots):
            self._queue.append((program.name, instance, request))

    # -- programs --------------------------------------------------------------------

    def _add(self, config: ProgramConfig, sink: ProgramLog) -> Program:
        program = Program(config, self.config.daemon, sink)
        self.programs[config.name] = program
        return program

    def _remove(self, program: Program) -> None:
        for instance in list(program.slots):
            handle = self._timers.pop((program.name, instance), None)
            if handle is not None:
                handle.cancel()
        del self.programs[program.name]
        self._release_sink(program.sink)

    def _release_sink(self, sink: ProgramLog) -> None:
        """Close a log no longer in use, once no pipe still writes to it."""
        if not any(pipe.sink is sink for pipe in self._effects.pipes):
            sink.close()

    def select(self, names: Iterable[str]) -> list[Program]:
        """The named programs ("all" for every one); unknown names are an error."""
        names = list(names)
        if not names or names == ["all"]:
            return [p for p in self.programs.values() if not p.removing]
        unknown = [n for n in names if n not in self.programs or self.programs[n].removing]
        if unknown:
            raise CommandError(f"unknown program: {', '.join(unknown)}")
        return [self.programs[n] for n in names]

    # -- commands --------------------------------------------------------------------

    def start_programs(self, programs: list[Program]) -> None:
        for program in programs:
            program.enabled = True
            for slot in list(program.slots.values()):
                if slot.state in (State.EXITED, State.FATAL, State.BACKOFF):
                    self._queue.append((program.name, slot.instance, StartRequested()))
            self._reconcile(program)
        self._drain()

    def stop_programs(self, programs: list[Program]) -> None:
        for program in programs:
            program.enabled = False
            self._reconcile(program)
        self._drain()

    def restart_programs(self, programs: list[Program]) -> None:
        for program in programs:
            program.enabled = True
            for slot in list(program.slots.values()):
                if slot.wanted or slot.state not in AT_REST:
                    self._queue.append((program.name, slot.instance, StopRequested()))
                    self._queue.append((program.name, slot.instance, StartRequested()))
            self._reconcile(program)
        self._drain()

    def rescale(self, program: Program) -> None:
        """The autoscaler changed the program's wanted count."""
        self._reconcile(program)
        self._drain()

    def scale(self, program: Program, count: int | None) -> None:
        program.pinned = count
        program.enabled = True
        self._reconcile(program)
        self._drain()

    def signal(self, programs: list[Program], signo: int) -> int:
        """Send a signal to every live process group of the programs; returns how many."""
        sent = 0
        for program in programs:
            for slot in program.slots.values():
                if slot.pid is not None:
                    self._effects.signal_group(slot.pid, signo, self._context(program, slot.instance))
                    sent += 1
        return sent

    def find_strays(self) -> None:
        """Look for processes that left their worker's session (see strays.py): a chance
        taken whenever /proc is read anyway."""
        self._effects.find_strays()

    def _context(self, program: Program, instance: int) -> SlotContext:
        return SlotContext(
            program=program.name,
            instance=instance,
            spec=lambda: program.spec(instance),
            sink=program.sink,
            deliver=lambda e: self.deliver(program.name, instance, e),
        )

    def reload(self, new: Config) -> list[str]:
        """Apply only what changed; returns one line per change. Raises CommandError,
        having changed nothing, when the new config's log files cannot be opened."""
        old_daemon = self.config.daemon
        logs_moved = (old_daemon.log_dir, old_daemon.log_max_bytes, old_daemon.log_backups) != (
            new.daemon.log_dir,
            new.daemon.log_max_bytes,
            new.daemon.log_backups,
        )
        current = {n: p.config for n, p in self.programs.items() if not p.removing}
        d = diff(current, dict(new.programs))
        # Open every log the change needs before touching anything.
        sinks = _open_sinks(new, new.programs if logs_moved else d.added)
        self.config = new
        changes: list[str] = []
        for key in ("socket", "socket_mode", "socket_group", "metrics"):
            if getattr(new.daemon, key) != getattr(old_daemon, key):
                changes.append(f"daemon.{key}: changed; takes effect at the next start")
        for name in d.removed:
            program = self.programs[name]
            program.removing = True
            self._reconcile(program)
            changes.append(f"removed: {name}")
        for name in d.added:
            changes.append(f"added: {name}")
            dropped = self.programs.get(name)
            if dropped is None:
                self._reconcile(self._add(new.programs[name], sinks[name]))
            else:  # dropped by an earlier reload and still stopping: take it back
                dropped.removing = False
                dropped.configure(new.programs[name], new.daemon)
                self._switch_sink(dropped, sinks[name])
                self.restart_programs([dropped])
        for name in d.changed:
            program = self.programs[name]
            old_config, new_config = program.config, new.programs[name]
            program.configure(new_config, new.daemon)
            if _only_scaling_changed(old_config, new_config):
                changes.append(f"scaled: {name} {_count(old_config)} -> {_count(new_config)}")
                self._reconcile(program)
            else:
                changes.append(f"changed: {name} (restarted)")
                self.restart_programs([program])
        if logs_moved:
            for name, sink in sinks.items():
                self._switch_sink(self.programs[name], sink)
            changes.append("daemon: log settings changed; logs reopened")
        self._drain()
        return changes or ["no changes"]

    def _switch_sink(self, program: Program, sink: ProgramLog) -> None:
        old, program.sink = program.sink, sink
        if old is sink:
            return
        for pipe in self._effects.pipes:
            if pipe.sink is old:
                pipe.sink = sink
        old.close()

    def reopen_logs(self) -> None:
        for program in self.programs.values():
            program.sink.reopen()

    def shutdown(self) -> None:
        """Stop every program at once, each with its own stop_signal and stop_timeout."""
        self.shutting_down = True
        self.stop_programs(list(self.programs.values()))

    def kill_all(self) -> None:
        for program in self.programs.values():
            program.enabled = False
            for instance in list(program.slots):
                self._queue.append((program.name, instance, KillRequested()))
        self._drain()

    @property
    def at_rest(self) -> bool:
        return all(p.at_rest for p in self.programs.values())

    # -- waiting for outcomes ----------------------------------------------------------

    def wait_for(self, programs: list[Program], target: str) -> asyncio.Future[tuple[bool, str]]:
        """A future resolved when the programs reach `target` ("started" or "stopped")."""
        return self._waiters.add(tuple(p.name for p in programs), target)


def _open_sinks(config: Config, names: Iterable[str]) -> dict[str, ProgramLog]:
    """Open the logs of the named programs, all or none (CommandError)."""
    d = config.daemon
    sinks: dict[str, ProgramLog] = {}
    try:
        if d.log_dir is not None:
            d.log_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            sinks[name] = ProgramLog(name, d.log_dir, d.log_max_bytes, d.log_backups)
    except OSError as exc:
        for sink in sinks.values():
            sink.close()
        where = exc.filename or d.log_dir
        raise CommandError(f"cannot open the log {where}: {exc.strerror}") from None
    return sinks


def _only_scaling_changed(old: ProgramConfig, new: ProgramConfig) -> bool:
    """Whether a reload can rescale the program without restarting its processes."""
    return replace(old, processes=new.processes, autoscale=new.autoscale) == new


def _count(config: ProgramConfig) -> str:
    auto = config.autoscale
    return str(config.processes) if auto is None else f"{auto.min}..{auto.max} ({auto.source.value})"


def _log_transition(name: str, old: Slot, new: Slot) -> None:
    label = f"{name}[{new.instance}]"
    if new.state is State.RUNNING:
        log.info("%s: running (pid %s)", label, new.pid)
    elif new.state is State.BACKOFF:
        log.warning("%s: %s", label, new.reason)
    elif new.state is State.FATAL:
        log.error("%s: fatal: %s", label, new.reason)
    elif new.state is State.EXITED:
        log.info("%s: exited (%s), not restarting", label, new.last_exit)
    elif new.state is State.STOPPED:
        log.info("%s: stopped (%s)", label, new.last_exit or "not running")
    elif new.state is State.STARTING and old.pid is not None and old.state is not State.STOPPING:
        log.warning("%s: %s; restarting", label, new.last_exit)
