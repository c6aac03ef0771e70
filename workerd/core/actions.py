"""What the shell must do for a slot, in the imperative. A slot's deadlines are not
actions: the shell arms its one timer from `Slot.timer_at` after every transition. The
one delay an action carries is EndGroup's grace, which outlives the slot's process: by
then the slot has moved on (a restart's new process is starting)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Spawn:
    """Make the slot's process; the shell answers with Spawned or SpawnFailed."""


@dataclass(frozen=True)
class SignalGroup:
    """The stop signal to the whole process group (kill_mode = "group")."""

    pgid: int
    signal: int


@dataclass(frozen=True)
class SignalMain:
    """The stop signal to the worker's main process alone (kill_mode = "mixed"): its
    children are its own to stop."""

    pid: int
    signal: int


@dataclass(frozen=True)
class EndGroup:
    """The main process exited during a stop (kill_mode = "mixed"): `signal` to what is
    left of its group and session, then SIGKILL to them after `grace` seconds."""

    pgid: int
    signal: int
    grace: float


@dataclass(frozen=True)
class KillGroup:
    """SIGKILL to the whole process group: after a stop timeout, or to clear what a dead
    worker left behind before it is replaced."""

    pgid: int
    #: Set when the stop ran out of stop_timeout: why, for the log line that names what
    #: was killed ("still running 30.0s after SIGTERM").
    overdue: str | None = None


Action = Spawn | SignalGroup | SignalMain | EndGroup | KillGroup
