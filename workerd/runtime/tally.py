"""What the supervisor counts as events are applied, for status and /metrics: scaling
decisions, the stops the daemon forced (a limit, the watchdog, no READY=1), the stops
that ran out of stop_timeout, restarts by reason, and the jobs workers reported
(BUSY=1 ... BUSY=0) with their durations.

Counts only grow (Prometheus counters); a program's jobs keep a fixed set of buckets,
so the memory is bounded whatever the uptime.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

from workerd.core.events import Event, Exited, Notified
from workerd.core.lifecycle import Slot
from workerd.core.scaling import Decision
from workerd.core.states import State

#: Upper bounds, in seconds, of the job-duration histogram's buckets (then +Inf).
JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


@dataclass
class Jobs:
    """A histogram of job durations: counts per bucket (the last one +Inf), their sum."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(JOB_BUCKETS) + 1))
    total: float = 0.0

    @property
    def done(self) -> int:
        return sum(self.buckets)

    def observe(self, seconds: float) -> None:
        self.buckets[bisect.bisect_left(JOB_BUCKETS, seconds)] += 1
        self.total += seconds


@dataclass
class Tally:
    #: By (program, "up" | "down").
    decisions: dict[tuple[str, str], int] = field(default_factory=dict)
    #: By (program, cause): "limit", "watchdog", "not ready".
    forced: dict[tuple[str, str], int] = field(default_factory=dict)
    #: By program.
    jobs: dict[str, Jobs] = field(default_factory=dict)
    #: Stops that ran out of stop_timeout (SIGKILL), by program.
    stop_timeouts: dict[str, int] = field(default_factory=dict)
    #: By (program, reason): "crash", "failed start", "exit" (status 0, restart = "always"),
    #: a forced stop's cause, "manual" (workerctl restart).
    restarts: dict[tuple[str, str], int] = field(default_factory=dict)
    #: Told of each restart as it is counted: (program, reason, what happened, when); the
    #: console's history marks them.
    on_restart: Callable[[str, str, str, float], None] = field(default=lambda *_: None, repr=False)

    def decided(self, program: str, decision: Decision) -> None:
        key = (program, "up" if decision.after > decision.before else "down")
        self.decisions[key] = self.decisions.get(key, 0) + 1

    def restarted_by_hand(self, program: str, processes: int, now: float) -> None:
        key = (program, "manual")
        self.restarts[key] = self.restarts.get(key, 0) + processes
        self.on_restart(program, "manual", f"{processes} process(es) restarted by hand", now)

    def slot_changed(self, program: str, old: Slot, new: Slot, event: Event, now: float) -> None:
        if new.forced is not None and old.forced is None:
            key = (program, new.forced.value)
            self.forced[key] = self.forced.get(key, 0) + 1
        if new.overdue is not None and old.overdue is None:
            self.stop_timeouts[program] = self.stop_timeouts.get(program, 0) + 1
        reason = _restart_reason(old, event) if new.restarts > old.restarts else None
        if reason is not None:
            self.restarts[(program, reason)] = self.restarts.get((program, reason), 0) + 1
            what = (old.last_limit if reason == "limit" else new.last_exit) or reason
            self.on_restart(program, reason, f"{program}[{new.instance}]: {what}", now)
        if isinstance(event, Notified) and old.busy_since is not None and new.busy_since is None:
            self.jobs.setdefault(program, Jobs()).observe(now - old.busy_since)


def _restart_reason(old: Slot, event: Event) -> str | None:
    """Why a slot that counts one more restart lost its process; None for a restart
    someone asked for, counted when asked (`restarted_by_hand`, rolling ones included)."""
    if old.forced is not None:
        return old.forced.value
    if old.state is State.STOPPING:
        return None
    if old.state is not State.RUNNING:
        return "failed start"
    return "exit" if isinstance(event, Exited) and event.success else "crash"
