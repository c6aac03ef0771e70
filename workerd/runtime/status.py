"""One status snapshot, read by every view: `workerctl status`, the console, `/metrics`.

A Snapshot is built once per request from the supervisor's facts and one read of
/proc, and never changes after. CPU% is a rate, so it is not in the snapshot: whoever
shows it keeps a CpuMeter (its own baseline). /metrics has its own, so a status call
does not reset the "CPU since the previous scrape", nor a scrape the status's; the
control handlers hold one for `workerctl status` and the console's page alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workerd.core.states import HAS_PROCESS, State
from workerd.process.procstat import ProcStat, TreeUsage, open_files, tree_usage, trees_pss
from workerd.runtime.program import Program
from workerd.runtime.tally import Tally


@dataclass(frozen=True)
class ProcessStatus:
    instance: int
    #: A process of the config before a reload, kept until a new one runs in its place.
    outgoing: bool
    pid: int | None
    state: str
    uptime: float | None
    restarts: int
    last_exit: str | None
    reason: str | None
    last_limit: str | None
    #: What the worker said on the notify socket: working on a job (BUSY=1) since
    #: `job_age` seconds, its STATUS= text, and whether it drains (STOPPING=1).
    busy: bool
    job_age: float | None
    status_text: str | None
    draining: bool
    rss: int | None
    #: The tree's PSS: shared pages (a prefork parent's, libraries) counted once.
    pss: int | None
    threads: int | None
    tree_processes: int | None
    open_files: int | None
    #: When the process started and the CPU seconds its tree used so far: a view's
    #: CpuMeter turns them into a percentage against its own baseline.
    started_at: float | None
    cpu_seconds: float | None


@dataclass(frozen=True)
class ProgramStatus:
    name: str
    desired: int
    running: int
    enabled: bool
    pinned: int | None
    limits: Mapping[str, Any]
    autoscale: Mapping[str, Any] | None
    #: While old processes (of the config before a reload, or before a rolling restart)
    #: are being replaced: {"rolling": bool, "old": how many still run, "held": why new
    #: ones do not take over, or None}.
    handover: Mapping[str, Any] | None
    #: Output lines dropped because the log could not be written (a full disk).
    log_lines_dropped: int
    processes: tuple[ProcessStatus, ...]


@dataclass(frozen=True)
class Snapshot:
    at: float
    daemon: Mapping[str, Any]
    programs: tuple[ProgramStatus, ...]
    #: Restarts for a watched limit by (program, limit).
    limit_restarts: Mapping[tuple[str, str], int]
    #: Scaling decisions by (program, "up" | "down"); stops the daemon forced by
    #: (program, cause); job durations by program (buckets as in tally.JOB_BUCKETS, sum).
    decisions: Mapping[tuple[str, str], int]
    forced: Mapping[tuple[str, str], int]
    #: Restarts by (program, reason): see tally.Tally.restarts.
    restarts: Mapping[tuple[str, str], int]
    jobs: Mapping[str, tuple[tuple[int, ...], float]]
    #: Stops that ran out of stop_timeout, by program.
    stop_timeouts: Mapping[str, int]


def take(programs: list[Program], now: float, table: Mapping[int, ProcStat], daemon: Mapping[str, Any],
         limit_restarts: Mapping[tuple[str, str], int], tally: Tally) -> Snapshot:
    """The snapshot of `programs` at `now`, with usage from one read of /proc (`table`)."""
    leaders = {s.pid for p in programs for g in p.generations() for s in g.slots.values()
               if s.pid is not None and s.state in HAS_PROCESS}
    usage = {pid: tree for pid, tree in tree_usage(table, leaders).items() if tree.processes}
    pss = trees_pss(table, set(usage))
    jobs = {name: (tuple(j.buckets), j.total) for name, j in tally.jobs.items()}
    return Snapshot(now, dict(daemon), tuple(_program(p, now, usage, pss) for p in programs),
                    dict(limit_restarts), dict(tally.decisions), dict(tally.forced),
                    dict(tally.restarts), jobs, dict(tally.stop_timeouts))


def _program(program: Program, now: float, usage: Mapping[int, TreeUsage],
             pss: Mapping[int, int | None]) -> ProgramStatus:
    slots = [(g, s) for g in program.generations() for s in sorted(g.slots.values(), key=lambda s: s.instance)]
    processes = []
    for generation, s in slots:
        tree = usage.get(s.pid) if s.pid is not None else None
        processes.append(ProcessStatus(
            instance=s.instance,
            outgoing=generation is not program,
            pid=s.pid,
            state=s.state.value,
            uptime=round(now - s.started_at, 3) if s.started_at is not None and s.pid is not None else None,
            restarts=s.restarts,
            last_exit=s.last_exit,
            reason=s.reason,
            last_limit=s.last_limit,
            busy=s.busy_since is not None,
            job_age=round(now - s.busy_since, 3) if s.busy_since is not None else None,
            status_text=s.status_text,
            draining=s.draining,
            rss=tree.rss if tree else None,
            pss=pss.get(s.pid) if tree and s.pid is not None else None,
            threads=tree.threads if tree else None,
            tree_processes=tree.processes if tree else None,
            open_files=open_files(s.pid) if tree and s.pid is not None else None,
            started_at=s.started_at if tree else None,
            cpu_seconds=tree.cpu if tree else None,
        ))
    return ProgramStatus(
        name=program.name,
        desired=program.target,
        running=program.all_running,
        enabled=program.enabled,
        pinned=program.pinned,
        limits=program.config.limits.given(),
        autoscale=_autoscale(program, now),
        handover=_handover(program),
        log_lines_dropped=program.sink.dropped_lines,
        processes=tuple(processes),
    )


def _handover(program: Program) -> dict[str, Any] | None:
    if not program.outgoing:
        return None
    failing = [f"{program.name}[{s.instance}]: {s.state.value} ({s.reason or s.last_exit})"
               for s in program.slots.values() if s.state in (State.BACKOFF, State.FATAL)]
    return {"rolling": program.rolling, "old": sum(g.running for g in program.outgoing),
            "held": "; ".join(failing) or None}


def _autoscale(program: Program, now: float) -> dict[str, Any] | None:
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


class CpuMeter:
    """CPU% of each worker's tree since this meter's previous reading (like top); the
    first time it sees a worker, its average since it started (like ps)."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[float, float]] = {}

    def percent(self, snapshot: Snapshot) -> dict[int, float]:
        """By worker pid, for every process of the snapshot with a known usage."""
        now, result, last = snapshot.at, {}, {}
        for program in snapshot.programs:
            for p in program.processes:
                if p.pid is None or p.cpu_seconds is None or p.started_at is None:
                    continue
                at, cpu = self._last.get(p.pid, (p.started_at, 0.0))
                result[p.pid] = round(100.0 * max(p.cpu_seconds - cpu, 0.0) / max(now - at, 1e-3), 1)
                last[p.pid] = (now, p.cpu_seconds)
        self._last = last
        return result


#: What a process shows as it is (dataclasses.asdict would deep-copy: 15 times slower).
_SHOWN = tuple(f.name for f in dataclasses.fields(ProcessStatus) if f.name not in ("started_at", "cpu_seconds"))


def document(snapshot: Snapshot, meter: CpuMeter) -> dict[str, Any]:
    """The snapshot as `workerctl status --json` shows it, CPU% from `meter`."""
    cpu = meter.percent(snapshot)

    def process(p: ProcessStatus) -> dict[str, Any]:
        shown = {name: getattr(p, name) for name in _SHOWN}
        shown["cpu_percent"] = cpu.get(p.pid) if p.pid is not None else None
        return shown

    return {
        "daemon": dict(snapshot.daemon),
        "programs": [
            {**{f.name: getattr(program, f.name) for f in dataclasses.fields(program) if f.name != "processes"},
             "limits": dict(program.limits),
             "autoscale": dict(program.autoscale) if program.autoscale is not None else None,
             "handover": dict(program.handover) if program.handover is not None else None,
             "processes": [process(p) for p in program.processes]}
            for program in snapshot.programs
        ],
    }
