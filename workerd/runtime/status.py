"""The status snapshot that `workerctl status` shows: plain data, built on demand."""

from __future__ import annotations

import os
from typing import Any

from workerd import __version__
from workerd.core.states import HAS_PROCESS, State
from workerd.runtime.procstat import ProcessSampler
from workerd.runtime.program import Program


def snapshot(programs: list[Program], now: float, sampler: ProcessSampler, started_at: float) -> dict[str, Any]:
    pids = [s.pid for p in programs for s in p.slots.values() if s.pid is not None and s.state in HAS_PROCESS]
    usage = sampler.sample(pids)
    return {
        "daemon": {"pid": os.getpid(), "version": __version__, "uptime": round(now - started_at, 3)},
        "programs": [_program(p, now, usage) for p in programs],
    }


def _program(program: Program, now: float, usage: dict[int, tuple[int, float]]) -> dict[str, Any]:
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
                "rss": usage[s.pid][0] if s.pid in usage else None,
                "cpu_percent": usage[s.pid][1] if s.pid in usage else None,
            }
            for s in slots
        ],
    }
