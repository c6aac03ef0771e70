"""What the supervisor counts as events are applied, for status and /metrics: scaling
decisions, the stops the daemon forced (a limit, the watchdog, no READY=1), the stops
that ran out of stop_timeout, restarts by reason, and the jobs workers reported
(BUSY=1 ... BUSY=0) with their durations.

Counts only grow (Prometheus counters); a program's jobs keep a fixed set of buckets,
so the memory is bounded whatever the uptime. The tally listens to the supervisor's
feed (runtime/feed.py); the daemon subscribes it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from workerd.core.events import Notified
from workerd.runtime.feed import QueueRead, RestartCounted, SlotChanged

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

    def queue_read(self, read: QueueRead) -> None:
        decision = read.outcome.decision
        if decision is not None:
            key = (read.program, "up" if decision.after > decision.before else "down")
            self.decisions[key] = self.decisions.get(key, 0) + 1

    def restart_counted(self, restart: RestartCounted) -> None:
        key = (restart.program, restart.reason)
        self.restarts[key] = self.restarts.get(key, 0) + restart.count

    def slot_changed(self, change: SlotChanged) -> None:
        program, old, new = change.program, change.old, change.new
        if new.forced is not None and old.forced is None:
            key = (program, new.forced.value)
            self.forced[key] = self.forced.get(key, 0) + 1
        if new.overdue is not None and old.overdue is None:
            self.stop_timeouts[program] = self.stop_timeouts.get(program, 0) + 1
        if isinstance(change.event, Notified) and old.busy_since is not None and new.busy_since is None:
            self.jobs.setdefault(program, Jobs()).observe(change.at - old.busy_since)
