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
from workerd.core.backoff import Backoff
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
        """Read until the program goes. Whatever a read raises is a failed reading (the
        count holds, as for an outage): the first of a streak is logged with its
        traceback, the sources are made anew (a client that raised from inside its
        protocol handling may be left in any state), and the next read waits a backoff
        that doubles from `interval`. Nothing a source does ends this loop."""
        failures = 0
        sources = _Sources(config, self._launcher)
        try:
            while name in self._supervisor.programs:
                try:
                    await self._read_once(name, config, sources)
                except Exception as exc:
                    failures += 1
                    if failures == 1:
                        log.exception("%s: reading the queue failed unexpectedly; the count holds, "
                                      "retrying with a backoff", name)
                    self._supervisor.on_queue(name, ReadFailed(
                        f"unexpected {type(exc).__name__}: {exc} (see the daemon's log)"))
                    await sources.close()
                    sources = _Sources(config, self._launcher)
                    await asyncio.sleep(_FAILURE_BACKOFF(config.interval).delay(failures - 1, 0.5))
                    continue
                failures = 0
                await self._pause(name, config, sources.push)
        finally:
            await sources.close()

    async def _read_once(self, name: str, config: AutoscaleConfig, sources: _Sources) -> None:
        source = sources.open()
        if sources.push is not None:
            sources.push.pushed.clear()  # a push from now on wakes the pause after this reading
        self._supervisor.on_queue(name, await self._read(source, config.timeout))
        if sources.dead_letters is not None:
            self._supervisor.on_queue(name, await _read_dead_letters(sources.dead_letters, config.timeout))

    async def _pause(self, name: str, config: AutoscaleConfig, push: PushSource | None) -> None:
        program = self._supervisor.programs.get(name)
        if push is not None and program is not None and program.target_now == 0:
            # At zero, the first job should not wait for the next interval.
            try:
                await asyncio.wait_for(push.pushed.wait(), config.interval)
            except asyncio.TimeoutError:
                pass
        else:
            await asyncio.sleep(config.interval)

    async def _read(self, source: Source, timeout: float) -> QueueEvent:
        try:
            reading = await asyncio.wait_for(source.read(), timeout)
        except asyncio.TimeoutError:
            return ReadFailed(f"no answer in {timeout:g}s")
        except SourceError as exc:
            return ReadFailed(str(exc))
        return Depth(reading, read_headroom(self._supervisor.config.daemon))


def _FAILURE_BACKOFF(interval: float) -> Backoff:
    """The pauses after unexpected failures: interval, twice that, ... up to a minute
    (or the interval, if longer)."""
    return Backoff(initial=interval, factor=2.0, maximum=max(interval, 60.0), jitter=0.0, reset=0.0)


class _Sources:
    """A program's queue source and dead-letter source, made on first use (making one
    may raise too) and closed together."""

    def __init__(self, config: AutoscaleConfig, launcher: Launcher) -> None:
        self._config = config
        self._launcher = launcher
        self.source: Source | None = None
        self.dead_letters: Source | None = None
        self.push: PushSource | None = None

    def open(self) -> Source:
        if self.source is None:
            self.source = make_source(self._config, self._launcher)
            self.dead_letters = make_dead_letter_source(self._config, self._launcher)
            self.push = self.source if isinstance(self.source, PushSource) else None
            if self.push is not None:
                self.push.watch()
        return self.source

    async def close(self) -> None:
        """Close both; a source that fails to close is logged, never raised."""
        for source in (self.source, self.dead_letters):
            if source is None:
                continue
            try:
                await source.close()
            except Exception:
                log.exception("closing a queue source failed")
        self.source = self.dead_letters = self.push = None


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
