"""The status snapshot that `workerctl status` shows: plain data, built on demand."""

from __future__ import annotations

import os
import time
from typing import Any

import psutil

from workerd import __version__
from workerd.core.states import HAS_PROCESS, State
from workerd.runtime.program import Program


class ProcessSampler:
    """RSS and CPU% of worker processes. CPU% is measured since the previous sample
    of the same pid (like top); a pid's first sample gives its lifetime average."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[float, float]] = {}

    def sample(self, pids: list[int]) -> dict[int, tuple[int | None, float | None]]:
        now = time.monotonic()
        result: dict[int, tuple[int | None, float | None]] = {}
        seen: dict[int, tuple[float, float]] = {}
        for pid in pids:
            try:
                proc = psutil.Process(pid)
                with proc.oneshot():
                    rss = proc.memory_info().rss
                    times = proc.cpu_times()
                    created = proc.create_time()
            except psutil.Error:
                result[pid] = (None, None)
                continue
            cpu = times.user + times.system
            previous = self._last.get(pid)
            if previous is not None and now > previous[0]:
                percent = 100.0 * (cpu - previous[1]) / (now - previous[0])
            else:
                age = max(time.time() - created, 1e-3)
                percent = 100.0 * cpu / age
            seen[pid] = (now, cpu)
            result[pid] = (rss, round(max(percent, 0.0), 1))
        self._last = seen
        return result


def snapshot(programs: list[Program], now: float, sampler: ProcessSampler, started_at: float) -> dict[str, Any]:
    pids = [s.pid for p in programs for s in p.slots.values() if s.pid is not None and s.state in HAS_PROCESS]
    usage = sampler.sample(pids)
    return {
        "daemon": {"pid": os.getpid(), "version": __version__, "uptime": round(now - started_at, 3)},
        "programs": [_program(p, now, usage) for p in programs],
    }


def _program(program: Program, now: float, usage: dict[int, tuple[int | None, float | None]]) -> dict[str, Any]:
    slots = sorted(program.slots.values(), key=lambda s: s.instance)
    return {
        "name": program.name,
        "desired": program.wanted,
        "running": sum(1 for s in slots if s.state is State.RUNNING),
        "enabled": program.enabled,
        "pinned": program.pinned,
        "processes": [
            {
                "instance": s.instance,
                "pid": s.pid,
                "state": s.state.value,
                "uptime": round(now - s.started_at, 3) if s.started_at is not None and s.pid is not None else None,
                "restarts": s.restarts,
                "last_exit": s.last_exit,
                "reason": s.reason,
                "rss": usage.get(s.pid, (None, None))[0] if s.pid is not None else None,
                "cpu_percent": usage.get(s.pid, (None, None))[1] if s.pid is not None else None,
            }
            for s in slots
        ],
    }
