"""A program's runtime facts: its config, its slots, and its target: how many processes
it should have (`workerctl status` and /metrics show it as `desired`)."""

from __future__ import annotations

import os

from workerd.config.model import AutoscaleConfig, DaemonConfig, ProgramConfig, Readiness
from workerd.config.units import signal_name
from workerd.core.backoff import Backoff
from workerd.core.handover import new_count
from workerd.core.lifecycle import Policy, Slot
from workerd.core.placeholders import expand_argv, expand_environment, has_placeholders
from workerd.core.reconcile import wanted_count
from workerd.core.scaling import ScalePolicy, ScaleState, reconfigured
from workerd.core.states import AT_REST, State
from workerd.process.output import ProgramLog
from workerd.process.spawn import ProcessSpec


def policy_of(config: ProgramConfig, daemon: DaemonConfig) -> Policy:
    return Policy(
        restart=config.restart,
        start_seconds=config.start_seconds,
        stop_signal=config.stop_signal,
        stop_signal_name=f"SIG{signal_name(config.stop_signal)}",
        stop_timeout=config.stop_timeout,
        kill_mode=config.kill_mode,
        max_restarts=config.max_restarts,
        backoff=Backoff(
            initial=config.backoff_initial,
            factor=config.backoff_factor,
            maximum=config.backoff_max,
            jitter=config.backoff_jitter,
            reset=config.backoff_reset,
        ),
        sample_interval=daemon.sample_interval,
        notify=config.ready is Readiness.NOTIFY,
        start_timeout=config.start_timeout,
        watchdog=config.watchdog,
    )


def scale_policy_of(config: AutoscaleConfig, daemon: DaemonConfig) -> ScalePolicy:
    return ScalePolicy(config.min, config.max, config.per_worker, config.scale_down_delay, config.max_age,
                       daemon.reserve_memory, daemon.max_load)


def most_processes(config: ProgramConfig, pinned: int | None) -> int:
    """What [daemon] max_processes holds a running program to: a pin overrides the config."""
    return pinned if pinned is not None else config.most_processes


class Program:
    def __init__(self, config: ProgramConfig, daemon: DaemonConfig, sink: ProgramLog) -> None:
        self.sink = sink
        #: False after `workerctl stop` (or from the start with autostart = false): the
        #: target is 0 and the slots stay listed as stopped.
        self.enabled = config.autostart
        #: A count set by `workerctl scale N`; None follows the config.
        self.pinned: int | None = None
        #: Set when a reload dropped the program: it goes once its slots are at rest.
        self.removing = False
        #: The autoscaler's state, for a program with [autoscale] (scale_policy set).
        self.scale: ScaleState | None = None
        self.scale_policy: ScalePolicy | None = None
        self.slots: dict[int, Slot] = {}
        #: Older generations, newest first: the processes of the configs before a reload,
        #: kept until processes of this one run in their place (see core.handover).
        self.outgoing: list[Program] = []
        #: Set on an outgoing generation: how many of its processes it still keeps.
        self.keep: int | None = None
        #: While it has outgoing generations, new processes start one at a time.
        self.rolling = False
        self.configure(config, daemon)

    def successor(self, config: ProgramConfig, daemon: DaemonConfig, rolling: bool) -> Program:
        """The next generation for a changed config (or a rolling restart), with the same
        log, pin and autoscaler state. This one becomes its newest outgoing generation and
        keeps its running processes until new ones run in their place: all new ones start
        at once, or, `rolling`, one at a time."""
        new = Program(config, daemon, self.sink)
        new.rolling = rolling
        self._hand_to(new, config, daemon)
        return new

    def revert_to(self, generation: Program, config: ProgramConfig, daemon: DaemonConfig) -> Program:
        """Back to one of the outgoing generations (core.reload.reverts_to), with `config`
        (its own but for the count): its processes are the program again, and this one
        becomes its newest outgoing generation, kept until they cover the count."""
        generation.keep = None
        generation.rolling = False
        self._hand_to(generation, config, daemon)
        generation.outgoing.remove(generation)
        return generation

    def _hand_to(self, new: Program, config: ProgramConfig, daemon: DaemonConfig) -> None:
        """`new` takes this generation's place: its log, pin and autoscaler state; this one
        and its outgoing generations are new's, this one keeping what runs now."""
        new.enabled, new.pinned, new.scale = self.enabled, self.pinned, self.scale
        new.configure(config, daemon)  # the autoscaler's count, within the new bounds
        new.outgoing = [self, *self.outgoing]
        self.outgoing = []
        self.keep = self.running

    def configure(self, config: ProgramConfig, daemon: DaemonConfig) -> None:
        self.config = config
        self.policy = policy_of(config, daemon)
        if config.autoscale is None:
            self.scale = self.scale_policy = None
        else:
            self.scale_policy = scale_policy_of(config.autoscale, daemon)
            occupied = sum(1 for slot in self.slots.values() if slot.occupied)
            self.scale = reconfigured(self.scale_policy, self.scale, occupied)
        env = dict(os.environ)
        env.update(config.environment)
        #: The `environment` values with {program}/{instance} placeholders, filled per process.
        self._templated = {name: value for name, value in config.environment.items() if has_placeholders(value)}
        env["WORKERD_PROGRAM"] = config.name
        env["WORKERD_SOCKET"] = str(daemon.socket)
        env["NOTIFY_SOCKET"] = str(daemon.notify_socket)
        if config.watchdog:
            env["WATCHDOG_USEC"] = str(int(config.watchdog * 1_000_000))
        else:
            env.pop("WATCHDOG_USEC", None)
        self._env = env

    @property
    def name(self) -> str:
        return self.config.name

    def generations(self) -> list[Program]:
        """This program and its outgoing generations, newest first."""
        return [self, *self.outgoing]

    @property
    def running(self) -> int:
        return sum(1 for slot in self.slots.values() if slot.state is State.RUNNING)

    @property
    def all_running(self) -> int:
        """Running in every generation: the old processes serve until new ones replace them."""
        return sum(g.running for g in self.generations())

    @property
    def target(self) -> int:
        """The count the program is after (see core.reconcile.wanted_count)."""
        return wanted_count(keep=self.keep, enabled=self.enabled, removing=self.removing, pinned=self.pinned,
                            scaled=self.scale.desired if self.scale is not None else None,
                            configured=self.config.processes)

    @property
    def target_now(self) -> int:
        """The count it may have now: its target, but during a rolling handover only one
        new process at a time (core.handover)."""
        return new_count(self.target, self.running, self.rolling and bool(self.outgoing))

    @property
    def at_rest(self) -> bool:
        """No process left or coming, in any generation."""
        return all(slot.state in AT_REST for p in self.generations() for slot in p.slots.values())

    def spec(self, instance: int) -> ProcessSpec:
        c = self.config
        env = dict(self._env)
        env.update(expand_environment(self._templated, c.name, instance))
        env["WORKERD_INSTANCE"] = str(instance)
        return ProcessSpec(
            argv=expand_argv(c.command, c.name, instance),
            env=env,
            directory=c.directory,
            uid=c.uid,
            gid=c.gid,
            user=c.user,
            umask=c.umask,
            nice=c.nice,
            limits=c.limits,
        )
