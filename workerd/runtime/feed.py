"""The supervisor's changes as typed records, and the listeners that hear them.

The supervisor only publishes what it changed; `workerd/daemon.py` subscribes what
follows from it (the journal, the tally, the workers index, the timeline, systemd's
STATUS=), so the loop that applies events knows none of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from workerd.core.events import Event, Exited
from workerd.core.lifecycle import Slot
from workerd.core.scaling import Outcome
from workerd.core.states import State

if TYPE_CHECKING:
    from workerd.runtime.program import Program


@dataclass(frozen=True, slots=True)
class SlotChanged:
    """An event was applied to a slot of `generation` (its state may be the same)."""

    generation: Program
    old: Slot
    new: Slot
    event: Event
    at: float

    @property
    def program(self) -> str:
        return self.generation.name


@dataclass(frozen=True, slots=True)
class QueueRead:
    """An autoscaled program's queue reading, applied: the outcome and the count it holds."""

    program: str
    outcome: Outcome
    desired: int
    error: str | None


@dataclass(frozen=True, slots=True)
class RestartCounted:
    """Processes restarted: `reason` is "crash", "failed start", "exit", a forced stop's
    cause or "manual" (`workerctl restart`, `count` processes at once)."""

    program: str
    reason: str
    what: str
    at: float
    count: int = 1


@dataclass(frozen=True, slots=True)
class Settled:
    """A batch of events or a queue reading was applied: the facts may be read whole now."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """The timeline took its points (the console's live stream follows)."""


R = TypeVar("R")


class Feed:
    """Records go to the listeners of their type, in the order they subscribed."""

    def __init__(self) -> None:
        self._listeners: dict[type, list[Callable[[Any], None]]] = {}

    def subscribe(self, kind: type[R], listener: Callable[[R], None]) -> None:
        self._listeners.setdefault(kind, []).append(listener)

    def publish(self, record: object) -> None:
        for listener in self._listeners.get(type(record), ()):
            listener(record)


def restart_of(change: SlotChanged) -> RestartCounted | None:
    """The restart a slot change counts, if any; None too for a restart someone asked
    for, counted when asked (rolling ones included)."""
    old, new, event = change.old, change.new, change.event
    if new.restarts <= old.restarts:
        return None
    if old.forced is not None:
        reason = old.forced.value
    elif old.state is State.STOPPING:
        return None
    elif old.state is not State.RUNNING:
        reason = "failed start"
    else:
        reason = "exit" if isinstance(event, Exited) and event.success else "crash"
    what = (old.last_limit if reason == "limit" else new.last_exit) or reason
    return RestartCounted(change.program, reason, f"{change.program}[{new.instance}]: {what}", change.at)
