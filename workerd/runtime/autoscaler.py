"""Reads each autoscaled program's queue every `interval` and tells the supervisor.

One task per program: read the queue (bounded by `timeout`) and the box (memory,
load), and hand what it found to the supervisor as an event (`core.scaling`'s Depth,
ReadFailed, DeadLettersRead); the supervisor applies the policy and the count
follows. Nothing here decides or writes a program's state.
"""

from __future__ import annotations

import asyncio
import logging
import os

from workerd.config.model import AutoscaleConfig, DaemonConfig
from workerd.core.scaling import DeadLettersRead, Depth, Headroom, QueueEvent, ReadFailed
from workerd.runtime.supervisor import Supervisor
from workerd.sources.base import PushSource, Source, SourceError
from workerd.sources.child import Launcher
from workerd.sources.factory import make_dead_letter_source, make_source

log = logging.getLogger("workerd")


class Autoscaler:
    def __init__(self, supervisor: Supervisor, launcher: Launcher) -> None:
        self._supervisor = supervisor
        #: Starts the children of the sources that need one (command, sqs).
        self._launcher = launcher
        self._tasks: dict[str, tuple[AutoscaleConfig, asyncio.Task[None]]] = {}
        #: Cancelled loops still closing their sources: the loop must not close under them.
        self._closing: set[asyncio.Task[None]] = set()

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
        timeout = config.timeout
        push = source if isinstance(source, PushSource) else None
        if push is not None:
            push.watch()
        try:
            while name in self._supervisor.programs:
                if push is not None:
                    push.pushed.clear()  # a push from now on wakes the pause below
                self._supervisor.on_queue(name, await self._read(source, timeout))
                if dead_letters is not None:
                    self._supervisor.on_queue(name, await _read_dead_letters(dead_letters, timeout))
                program = self._supervisor.programs.get(name)
                if push is not None and program is not None and program.wanted == 0:
                    # At zero, the first job should not wait for the next interval.
                    try:
                        await asyncio.wait_for(push.pushed.wait(), config.interval)
                    except asyncio.TimeoutError:
                        pass
                else:
                    await asyncio.sleep(config.interval)
        except Exception:  # a bug in a source must not end autoscaling silently
            log.exception("%s: the autoscaler stopped", name)
            self._supervisor.on_queue(name, ReadFailed("the autoscaler failed (see the daemon's log)"))
        finally:
            await source.close()
            if dead_letters is not None:
                await dead_letters.close()

    async def _read(self, source: Source, timeout: float) -> QueueEvent:
        try:
            reading = await asyncio.wait_for(source.read(), timeout)
        except asyncio.TimeoutError:
            return ReadFailed(f"no answer in {timeout:g}s")
        except SourceError as exc:
            return ReadFailed(str(exc))
        return Depth(reading, read_headroom(self._supervisor.config.daemon))


async def _read_dead_letters(source: Source, timeout: float) -> DeadLettersRead:
    """Dead letters are shown, never used for scaling."""
    try:
        reading = await asyncio.wait_for(source.read(), timeout)
    except asyncio.TimeoutError:
        return DeadLettersRead(None, f"no answer in {timeout:g}s")
    except SourceError as exc:
        return DeadLettersRead(None, str(exc))
    return DeadLettersRead(reading.depth)


def read_headroom(daemon: DaemonConfig) -> Headroom:
    """What the box gate needs (core.scaling.gate), read only where it is on."""
    load = os.getloadavg()[0] / (os.cpu_count() or 1) if daemon.max_load else 0.0
    return Headroom(_mem_available() if daemon.reserve_memory else None, load)


def _mem_available() -> int | None:
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
