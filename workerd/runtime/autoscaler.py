"""Reads each autoscaled program's queue every `interval` and sets its wanted count.

One task per program: read (bounded by `timeout`), judge (`core.scaling`), and hand
the new count to the supervisor, which reconciles. A reading that fails or times
out only holds the count; the error and since when are kept for status, and the
log says once when the source starts failing and once when it answers again. The
box gate (reserve_memory, max_load) is read here, once per reading.
"""

from __future__ import annotations

import asyncio
import logging
import os

from workerd.config.model import AutoscaleConfig, DaemonConfig
from workerd.core.scaling import ScalePolicy, ScaleState, on_error, on_reading
from workerd.core.states import State
from workerd.runtime.program import Program
from workerd.runtime.supervisor import Supervisor
from workerd.sources.base import PushSource, Source, SourceError
from workerd.sources.child import Launcher
from workerd.sources.factory import make_dead_letter_source, make_source

log = logging.getLogger("workerd")


def policy_of(config: AutoscaleConfig) -> ScalePolicy:
    return ScalePolicy(config.min, config.max, config.per_worker, config.scale_down_delay, config.max_age)


class Autoscaler:
    def __init__(self, supervisor: Supervisor, launcher: Launcher) -> None:
        self._supervisor = supervisor
        #: Starts the children of the sources that need one (command, sqs).
        self._launcher = launcher
        self._tasks: dict[str, tuple[AutoscaleConfig, asyncio.Task[None]]] = {}
        #: Cancelled loops still closing their sources: the loop must not close under them.
        self._closing: set[asyncio.Task[None]] = set()
        #: Scaling decisions by (program, "up" | "down"), for metrics.
        self.decisions: dict[tuple[str, str], int] = {}

    def update(self) -> None:
        """Start, restart or stop reading loops to match the programs' configs."""
        wanted = {
            name: program.config.autoscale
            for name, program in self._supervisor.programs.items()
            if program.config.autoscale is not None and not program.removing
        }
        for name, (config, task) in list(self._tasks.items()):
            if wanted.get(name) != config:
                self._cancel(task)
                del self._tasks[name]
        for name, config in wanted.items():
            if name not in self._tasks and config is not None:
                task = asyncio.ensure_future(self._run(name, config))
                self._tasks[name] = (config, task)

    def stop(self) -> None:
        """Cancel every reading loop; `wait_closed` waits for them to close their sources."""
        for _, task in self._tasks.values():
            self._cancel(task)
        self._tasks.clear()

    async def wait_closed(self, timeout: float) -> bool:
        """Wait, at most `timeout`, for the cancelled loops to end; False if some did not."""
        if not self._closing:
            return True
        _, pending = await asyncio.wait(set(self._closing), timeout=timeout)
        return not pending

    def _cancel(self, task: asyncio.Task[None]) -> None:
        task.cancel()
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _run(self, name: str, config: AutoscaleConfig) -> None:
        source = make_source(config, self._launcher)
        dead_letters = make_dead_letter_source(config, self._launcher)
        policy = policy_of(config)
        timeout = config.timeout
        loop = asyncio.get_running_loop()
        push = source if isinstance(source, PushSource) else None
        if push is not None:
            push.watch()
        try:
            while True:
                program = self._supervisor.programs.get(name)
                if program is None or program.scale is None:
                    return
                if push is not None:
                    push.pushed.clear()  # a push from now on wakes the pause below
                try:
                    reading = await asyncio.wait_for(source.read(), timeout)
                except asyncio.TimeoutError:
                    program.scale = _held(name, policy, program.scale, f"no answer in {timeout:g}s", loop.time())
                except SourceError as exc:
                    program.scale = _held(name, policy, program.scale, str(exc), loop.time())
                else:
                    running = sum(1 for s in program.slots.values() if s.state is State.RUNNING)
                    gate = box_gate(self._supervisor.config.daemon)
                    program.scale, decision, recovered_after = on_reading(
                        policy, program.scale, reading, running, gate, loop.time())
                    if recovered_after is not None:
                        log.info("%s: queue source answers again after %.1fs", name, recovered_after)
                    if decision is not None:
                        direction = "up" if decision.after > decision.before else "down"
                        key = (name, direction)
                        self.decisions[key] = self.decisions.get(key, 0) + 1
                        log.info("%s: scale %s %d -> %d (%s)", name, direction, decision.before, decision.after,
                                 decision.why)
                        self._supervisor.rescale(program)
                if dead_letters is not None:
                    program.dead_letters = await _read_dead_letters(dead_letters, timeout)
                if push is not None and program.wanted == 0:
                    # At zero, the first job should not wait for the next interval.
                    try:
                        await asyncio.wait_for(push.pushed.wait(), config.interval)
                    except asyncio.TimeoutError:
                        pass
                else:
                    await asyncio.sleep(config.interval)
        except Exception:  # a bug in a source must not end autoscaling silently
            log.exception("%s: the autoscaler stopped", name)
            if (program := self._supervisor.programs.get(name)) is not None and program.scale is not None:
                program.scale, _ = on_error(policy, program.scale, "the autoscaler failed (see the daemon's log)",
                                            loop.time())
        finally:
            await source.close()
            if dead_letters is not None:
                await dead_letters.close()


def _held(name: str, policy: ScalePolicy, state: ScaleState, error: str, now: float) -> ScaleState:
    """A failed reading holds the count; the first of an outage is logged."""
    state, started = on_error(policy, state, error, now)
    if started:
        log.warning("%s: queue source failing: %s; holding at %d", name, error, state.desired)
    return state


async def _read_dead_letters(source: Source, timeout: float) -> tuple[int | None, str | None]:
    """(count, None) or (None, why): dead letters are shown, never used for scaling."""
    try:
        reading = await asyncio.wait_for(source.read(), timeout)
    except asyncio.TimeoutError:
        return None, f"no answer in {timeout:g}s"
    except SourceError as exc:
        return None, str(exc)
    return reading.depth, None


def box_gate(daemon: DaemonConfig) -> str | None:
    """Why scaling up is not allowed now (memory short or box loaded), or None."""
    if daemon.reserve_memory:
        available = _mem_available()
        if available is not None and available < daemon.reserve_memory:
            return f"memory available {available >> 20} MiB < reserve_memory {daemon.reserve_memory >> 20} MiB"
    if daemon.max_load:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
        if load > daemon.max_load:
            return f"load {load:.2f} per core > max_load {daemon.max_load:g}"
    return None


def _mem_available() -> int | None:
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def describe(program: Program, now: float) -> dict[str, object] | None:
    """The autoscaler's view of a program, for status."""
    if program.scale is None or program.config.autoscale is None:
        return None
    state, config = program.scale, program.config.autoscale
    reading, decision = state.last_reading, state.last_decision
    return {
        "source": config.source.value,
        "depth": reading.depth if reading else None,
        "age": round(reading.age, 3) if reading and reading.age is not None else None,
        "desired": state.desired,
        "min": config.min,
        "max": config.max,
        "last_decision": {"from": decision.before, "to": decision.after, "why": decision.why} if decision else None,
        "held": state.held,
        "error": state.error,
        "error_for": round(now - state.error_since, 1) if state.error_since is not None else None,
        "dead_letters": program.dead_letters[0],
        "dead_letter_error": program.dead_letters[1],
    }
