"""What happened to a slot, in the past tense. The shell makes these; the core reads them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StartRequested:
    """Someone (reconcile, workerctl) wants the slot to run."""


@dataclass(frozen=True)
class StopRequested:
    """Someone wants the slot stopped gracefully."""


@dataclass(frozen=True)
class KillRequested:
    """Stop at once: SIGKILL to the group (a second shutdown signal)."""


@dataclass(frozen=True)
class Spawned:
    pid: int


@dataclass(frozen=True)
class SpawnFailed:
    """The process could not be made; `reason` is the OS error (`exec x: not found in PATH`)."""

    reason: str


@dataclass(frozen=True)
class Exited:
    pid: int
    #: True for exit status 0; on-failure restarts only when False.
    success: bool
    #: Human text made by the shell, e.g. "exit status 1" or "killed by SIGKILL".
    description: str


@dataclass(frozen=True)
class LimitExceeded:
    """The process `pid` went over a watched limit (memory, cpu_percent)."""

    pid: int
    reason: str


@dataclass(frozen=True)
class Notified:
    """The worker `pid` (or a process of its session) sent an sd_notify datagram; the
    fields it set, the others None/False."""

    pid: int
    ready: bool = False
    watchdog: bool = False
    #: BUSY=1 (True) or BUSY=0 (False): around each job.
    busy: bool | None = None
    #: STATUS=text.
    status: str | None = None
    #: STOPPING=1: the worker drains on its own.
    stopping: bool = False


@dataclass(frozen=True)
class TimerExpired:
    """The slot's one deadline (`Slot.timer_at`) has passed."""


Event = (
    StartRequested | StopRequested | KillRequested | Spawned | SpawnFailed | Exited | LimitExceeded | Notified
    | TimerExpired
)
