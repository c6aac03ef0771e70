"""What the shell must do for a slot, in the imperative. Timers are not actions:
the shell arms a slot's one timer from `Slot.timer_at` after every transition."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Spawn:
    """Make the slot's process; the shell answers with Spawned or SpawnFailed."""


@dataclass(frozen=True)
class SignalGroup:
    pgid: int
    signal: int


@dataclass(frozen=True)
class KillGroup:
    """SIGKILL to the whole process group: after a stop timeout, or to clear what a dead
    worker left behind before it is replaced."""

    pgid: int


Action = Spawn | SignalGroup | KillGroup
