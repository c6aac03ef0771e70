"""The status snapshot that `workerctl status` shows: plain data, built on demand."""

from __future__ import annotations

import os
from typing import Any

from workerd import __version__
from workerd.core.states import HAS_PROCESS, State
from workerd.runtime.autoscaler import describe
from workerd.runtime.procstat import TreeUsage, open_files, scan
from workerd.runtime.program import Program


class CpuMeter:
    """CPU% of each worker's tree since the previous status (like top); on a worker's
    first status, its average since it started (like ps)."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[float, float]] = {}

    def percent(self, usage: dict[int, TreeUsage], started: dict[int, float], now: float) -> dict[int, float]:
        result: dict[int, float] = {}
        for pid, tree in usage.items():
            at, cpu = self._last.get(pid, (started[pid], 0.0))
            result[pid] = round(100.0 * max(tree.cpu - cpu, 0.0) / max(now - at, 1e-3), 1)
        self._last = {pid: (now, tree.cpu) for pid, tree in usage.items()}
        return result


def snapshot(programs: list[Program], now: float, meter: CpuMeter, started_at: float,
             enforcement: str) -> dict[str, Any]:
    started = {
        s.pid: s.started_at if s.started_at is not None else now
        for p in programs for g in p.generations() for s in g.slots.values()
        if s.pid is not None and s.state in HAS_PROCESS
    }
    usage = {pid: tree for pid, tree in scan(set(started)).items() if tree.processes}
    cpu = meter.percent(usage, started, now)
    return {
        "daemon": {
            "pid": os.getpid(),
            "version": __version__,
            "uptime": round(now - started_at, 3),
            "limits": enforcement,
        },
        "programs": [_program(p, now, usage, cpu) for p in programs],
    }


def _program(program: Program, now: float, usage: dict[int, TreeUsage], cpu: dict[int, float]) -> dict[str, Any]:
    slots = [(g, s) for g in program.generations() for s in sorted(g.slots.values(), key=lambda s: s.instance)]
    processes = []
    for generation, s in slots:
        tree = usage.get(s.pid) if s.pid is not None else None
        processes.append({
            "instance": s.instance,
            # a process of the config before a reload, kept until a new one runs in its place
            "outgoing": generation is not program,
            "pid": s.pid,
            "state": s.state.value,
            "uptime": round(now - s.started_at, 3) if s.started_at is not None and s.pid is not None else None,
            "restarts": s.restarts,
            "last_exit": s.last_exit,
            "reason": s.reason,
            "last_limit": s.last_limit,
            "rss": tree.rss if tree else None,
            "cpu_percent": cpu.get(s.pid) if tree and s.pid is not None else None,
            "threads": tree.threads if tree else None,
            "tree_processes": tree.processes if tree else None,
            "open_files": open_files(s.pid) if tree and s.pid is not None else None,
        })
    return {
        "name": program.name,
        "desired": program.wanted,
        "running": sum(1 for _, s in slots if s.state is State.RUNNING),
        "enabled": program.enabled,
        "pinned": program.pinned,
        "limits": program.config.limits.given(),
        "autoscale": describe(program, now),
        "processes": processes,
    }
