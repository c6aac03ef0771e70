"""The facts of every program and slot, and the one place events are applied.

Events arrive from the reaper, timers and commands; `deliver` queues them and
applies them one at a time (`transition`), hands the resulting actions to
`Effects`, feeds any outcome back into the queue, then reconciles each touched
program's wanted count. Nothing here calls the OS directly, and what follows from a
change (log lines, counts, the timeline, systemd's STATUS=) listens to `feed`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from collections.abc import Callable, Iterable

from workerd.config.capacity import over_max_processes, pins_problem
from workerd.config.model import Config, ProgramConfig
from workerd.config.schema import AT_START
from workerd.config.summary import rescaled_line
from workerd.core import scaling
from workerd.core.events import Event, KillRequested, TimerExpired
from workerd.core.handover import Outgoing, keep_counts, restart_rolls
from workerd.core.lifecycle import Slot, transition
from workerd.core.reconcile import forgotten, reconcile, restart, start
from workerd.core.reload import Facts, Step, plan, reverts_to
from workerd.core.scaling import QueueEvent
from workerd.process.clock import Clock, Deadlines
from workerd.process.effects import Effects, SlotContext
from workerd.process.output import LogError, ProgramLog, open_logs, reopen_logs
from workerd.process.procstat import ProcStat
from workerd.runtime.feed import Feed, QueueRead, RestartCounted, Settled, SlotChanged, restart_of
from workerd.runtime.program import Program, most_processes
from workerd.runtime.waiters import Waiters

log = logging.getLogger("workerd")

#: A slot is named by its program generation (see Program.outgoing) and instance.
SlotKey = tuple[Program, int]


class CommandError(Exception):
    """A command that cannot be carried out (unknown program, bad argument)."""


class Supervisor:
    def __init__(self, config: Config, clock: Clock, effects: Effects,
                 rand: Callable[[], float] = random.random) -> None:
        self.config = config
        self._clock = clock
        self._effects = effects
        self._rand = rand
        self.programs: dict[str, Program] = {}
        #: Each slot's deadline; `deadlines.before` reads what arrived first (the daemon sets it).
        self.deadlines: Deadlines[SlotKey] = Deadlines(clock, lambda key: self.deliver(key[0], key[1], TimerExpired()))
        self._queue: collections.deque[tuple[Program, int, Event]] = collections.deque()
        self._draining = False
        self._waiters = Waiters(self.programs)
        self.shutting_down = False
        #: What changed, as it changes: the daemon subscribes what follows from it.
        self.feed = Feed()
        sinks = _open_logs(config, config.programs)
        for program_config in config.programs.values():
            self._add(program_config, sinks[program_config.name])

    # -- applying events -------------------------------------------------------------

    def start(self) -> None:
        for program in list(self.programs.values()):
            self._reconcile(program)
        self._drain()

    def deliver(self, program: Program, instance: int, event: Event) -> None:
        """Apply an event to a slot of `program` (a current program or one of its
        outgoing generations); events for a generation that is gone are dropped."""
        self._queue.append((program, instance, event))
        self._drain()

    def _drain(self) -> None:
        """Apply the queued events; each time the queue runs dry, reconcile the programs
        they touched (which may queue more). Reconciling after every event instead would
        ask again for every start still queued: O(n²) events for n slots."""
        if self._draining:
            return
        self._draining = True
        touched: dict[str, Program] = {}
        try:
            while self._queue:
                generation, instance, event = self._queue.popleft()
                program = self.programs.get(generation.name)
                if (program is not None and generation in program.generations()
                        and self._apply(generation, instance, event)):
                    touched[program.name] = program
                if not self._queue:
                    for program in touched.values():
                        self._reconcile(program)
                    touched.clear()
        finally:
            self._draining = False
        self._waiters.check()
        self.feed.publish(Settled())

    def _apply(self, program: Program, instance: int, event: Event) -> bool:
        """Apply one event to a slot; True if the slot's state or place changed (only then
        can the program's count need reconciling: a worker's BUSY= alone never does)."""
        old = program.slots.get(instance) or Slot(instance)
        now = self._clock.now()
        new, actions = transition(old, event, now, program.policy, self._rand)
        program.slots[instance] = new
        change = SlotChanged(program, old, new, event, now)
        self.feed.publish(change)
        if (restarted := restart_of(change)) is not None:
            self.feed.publish(restarted)
        if new.timer_at != old.timer_at:
            self.deadlines.arm((program, instance), new.timer_at)
        if actions:
            ctx = self._context(program, instance)
            for action in actions:
                outcome = self._effects.execute(action, ctx)
                if outcome is not None:
                    self._queue.append((program, instance, outcome))
        if forgotten(new, program.enabled):
            del program.slots[instance]
        return new.state is not old.state or new.occupied != old.occupied

    def _reconcile(self, program: Program) -> None:
        if self.programs.get(program.name) is not program:
            return
        if program.removing and program.at_rest:
            self._remove(program)
            return
        self._hand_over(program)
        for generation in program.generations():
            for instance, request in reconcile(generation.target_now, generation.slots):
                self._queue.append((generation, instance, request))

    def _hand_over(self, program: Program) -> None:
        """Set how many processes each outgoing generation still keeps, and let go of
        those that have handed over all their work."""
        if not program.outgoing:
            return
        outgoing = [Outgoing(g.keep or 0, g.running) for g in program.outgoing]
        counts = keep_counts(program.target, program.running, outgoing)
        for generation, count in zip(program.outgoing, counts, strict=True):
            generation.keep = count
        program.outgoing = [g for g in program.outgoing if g.keep or not g.at_rest]
        if not program.outgoing:
            log.info("%s: the processes of the previous config have all been replaced", program.name)

    # -- programs --------------------------------------------------------------------

    def _add(self, config: ProgramConfig, sink: ProgramLog) -> Program:
        program = Program(config, self.config.daemon, sink)
        self.programs[config.name] = program
        return program

    def _remove(self, program: Program) -> None:
        for generation in program.generations():
            for instance in list(generation.slots):
                self.deadlines.cancel((generation, instance))
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
            for instance, request in start(program.slots):
                self._queue.append((program, instance, request))
            self._reconcile(program)
        self._drain()

    def stop_programs(self, programs: list[Program]) -> None:
        for program in programs:
            program.enabled = False
            self._reconcile(program)
        self._drain()

    def restart_programs(self, programs: list[Program], rolling: bool = False) -> list[Program]:
        """Restart each program: a rolling handover to a new generation where it rolls
        (core.handover.restart_rolls), else stop then start each slot. Returns the
        programs as they are now (a rolled one is a new generation)."""
        restarted = []
        for program in programs:
            self.feed.publish(RestartCounted(program.name, "manual", f"{program.running} process(es) restarted by hand",
                                             self._clock.now(), count=program.running))
            if restart_rolls(rolling, program.config.rolling, program.running, program.enabled):
                program = self.programs[program.name] = program.successor(program.config, self.config.daemon,
                                                                          rolling=True)
            else:
                program.enabled = True
                for instance, request in restart(program.slots):
                    self._queue.append((program, instance, request))
            self._reconcile(program)
            restarted.append(program)
        self._drain()
        return restarted

    def on_queue(self, name: str, event: QueueEvent) -> None:
        """A reading of an autoscaled program's queue: the scaling policy decides, the
        process count follows."""
        program = self.programs.get(name)
        if program is None or program.scale is None or program.scale_policy is None:
            return
        program.scale, outcome = scaling.apply(program.scale_policy, program.scale, event, program.running,
                                               self._clock.now())
        self.feed.publish(QueueRead(name, outcome, program.scale.desired, program.scale.error))
        self.feed.publish(Settled())
        if outcome.decision is not None:
            self._reconcile(program)
            self._drain()

    def scale(self, program: Program, count: int | None) -> None:
        """Pin the count (None: unpin); raises CommandError past [daemon] max_processes."""
        most = {p.name: most_processes(p.config, p.pinned) for p in self.programs.values() if not p.removing}
        most[program.name] = most_processes(program.config, count)
        problem = over_max_processes(most[program.name], sum(most.values()), self.config.daemon.max_processes)
        if problem is not None:
            raise CommandError(f"{program.name}: {problem}")
        program.pinned = count
        program.enabled = True
        self._reconcile(program)
        self._drain()

    def signal(self, programs: list[Program], signo: int) -> int:
        """Send a signal to every live process group of the programs; returns how many."""
        sent = 0
        for generation in (g for program in programs for g in program.generations()):
            for slot in generation.slots.values():
                if slot.pid is not None:
                    self._effects.signal_group(slot.pid, signo, self._context(generation, slot.instance))
                    sent += 1
        return sent

    def processes(self) -> dict[int, ProcStat]:
        """One read of /proc, shared by everything that needs one in this loop iteration;
        the processes that left their worker's session are looked for in it (process/strays.py)."""
        table = self._effects.processes()
        self._effects.find_strays(table)
        return table

    def _context(self, program: Program, instance: int) -> SlotContext:
        return SlotContext(
            program=program.name,
            instance=instance,
            spec=lambda: program.spec(instance),
            sink=program.sink,
            deliver=lambda e: self.deliver(program, instance, e),
        )

    def reload(self, new: Config) -> list[str]:
        """Apply only what changed; returns one line per change. Raises CommandError,
        having changed nothing, when the new config's log files cannot be opened or the
        pinned counts would take it past its max_processes."""
        counts = {name: c.most_processes for name, c in new.programs.items()}
        pins = {name: p.pinned for name, p in self.programs.items() if p.pinned is not None}
        problem = pins_problem(counts, new.daemon.max_processes, pins)
        if problem is not None:
            raise CommandError(problem)
        old_daemon = self.config.daemon
        logs_moved = (old_daemon.log_dir, old_daemon.log_max_bytes, old_daemon.log_backups) != (
            new.daemon.log_dir,
            new.daemon.log_max_bytes,
            new.daemon.log_backups,
        )
        current = {n: p.config for n, p in self.programs.items() if not p.removing}
        facts = {n: Facts(p.running, p.enabled, p.removing, tuple((g.config, g.running) for g in p.outgoing))
                 for n, p in self.programs.items()}
        steps = plan(current, new.programs, facts)
        # Open every log the change needs before touching anything.
        sinks = _open_logs(new, new.programs if logs_moved else
                            [n for n, step in steps if step in (Step.ADD, Step.TAKE_BACK)])
        self.config = new
        changes: list[str] = []
        for key in AT_START:
            if getattr(new.daemon, key) != getattr(old_daemon, key):
                changes.append(f"daemon.{key}: changed; takes effect at the next start")
        for name, step in steps:
            changes.append(self._carry_out(name, step, new, sinks, facts.get(name)))
        if logs_moved:
            for name, sink in sinks.items():
                self.programs[name].sink.adopt(sink)
            changes.append("daemon: log settings changed; logs reopened")
        self._drain()
        return changes or ["no changes"]

    def _carry_out(self, name: str, step: Step, new: Config, sinks: dict[str, ProgramLog],
                   facts: Facts | None) -> str:
        """Apply one step of a reload's plan; returns the line that reports it."""
        config = new.programs.get(name)
        if step is Step.ADD:
            assert config is not None
            self._reconcile(self._add(config, sinks[name]))
            return f"added: {name}"
        program = self.programs[name]
        if step is Step.REMOVE:
            program.removing = True
            self._reconcile(program)
            return f"removed: {name}"
        assert config is not None
        old_config = program.config
        if step is Step.TAKE_BACK:
            program.removing = False
            program.configure(config, new.daemon)
            program.sink.adopt(sinks[name])
            self.restart_programs([program])
            return f"added: {name}"
        if step is Step.RESCALE:
            program.configure(config, new.daemon)
            self._reconcile(program)
            return rescaled_line(old_config, config)
        if step is Step.REVERT:
            index = reverts_to(config, facts) if facts is not None else None
            assert index is not None
            self.programs[name] = program.revert_to(program.outgoing[index], config, new.daemon)
            self._reconcile(self.programs[name])
            return f"changed: {name} (back to the config its old processes run; the newer ones stop)"
        if step is Step.REPLACE:
            self.programs[name] = program.successor(config, new.daemon, rolling=config.rolling)
            self._reconcile(self.programs[name])
            return f"changed: {name} (new processes start; each old one stops once a new one runs)"
        program.configure(config, new.daemon)
        self.restart_programs([program])
        return f"changed: {name} (restarted)"

    def reopen_logs(self) -> None:
        reopen_logs([p.sink for p in self.programs.values()], self.config.daemon.log_dir)

    def shutdown(self) -> None:
        """Stop every program at once, each with its own stop_signal and stop_timeout."""
        self.shutting_down = True
        self.stop_programs(list(self.programs.values()))

    def kill_all(self) -> None:
        for program in self.programs.values():
            program.enabled = False
            for generation in program.generations():
                for instance in list(generation.slots):
                    self._queue.append((generation, instance, KillRequested()))
        self._drain()

    @property
    def at_rest(self) -> bool:
        return all(p.at_rest for p in self.programs.values())

    # -- waiting for outcomes ----------------------------------------------------------

    def wait_for(self, programs: list[Program], target: str) -> asyncio.Future[tuple[bool, str]]:
        """A future resolved when the programs reach `target` ("started" or "stopped")."""
        return self._waiters.add(tuple(p.name for p in programs), target)


def _open_logs(config: Config, names: Iterable[str]) -> dict[str, ProgramLog]:
    d = config.daemon
    try:
        return open_logs(names, d.log_dir, d.log_max_bytes, d.log_backups)
    except LogError as exc:
        raise CommandError(str(exc)) from None



