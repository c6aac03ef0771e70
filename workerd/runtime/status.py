"""The status snapshot that `workerctl status` shows: plain data, built on demand."""

from __future__ import annotations

import os
from typing import Any

from workerd import __version__
from workerd.core.states import HAS_PROCESS, State
from workerd.runtime.procstat import TreeUsage, open_files, scan
from workerd.runtime.program import Program
from workerd.runtime.sentinel import Sentinel


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
             enforcement: str, sentinel: Sentinel) -> dict[str, Any]:
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
            # pid None: dead and not yet replaced (a crash of the daemon now would leave children)
            "sentinel": {"pid": sentinel.pid, "restarts": sentinel.restarts},
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
        "limits": _limits(program),
        "autoscale": _autoscale(program, now),
        "processes": processes,
    }


def _limits(program: Program) -> dict[str, Any]:
    limits = program.config.limits
    return {name: getattr(limits, name) for name in (
        "memory", "cpu_percent", "cpu_window", "open_files", "tasks", "address_space", "core", "cpu_time",
        "file_size") if getattr(limits, name) is not None and (name != "cpu_window" or limits.cpu_percent)}


def _autoscale(program: Program, now: float) -> dict[str, object] | None:
    """The autoscaler's view of a program."""
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
        "dead_letters": state.dead_letters,
        "dead_letter_error": state.dead_letter_error,
    }
