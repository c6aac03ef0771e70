"""Which slot each live worker process is in: where a notify datagram from it, or from
a process of its session, goes. It follows the supervisor's feed (runtime/feed.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from workerd.core.events import Notified
from workerd.runtime.feed import SlotChanged

if TYPE_CHECKING:
    from workerd.runtime.program import Program

#: Delivers an event to a slot: its program generation and instance (Supervisor.deliver).
Deliver = Callable[["Program", int, Notified], None]


class WorkerIndex:
    def __init__(self) -> None:
        self._slots: dict[int, tuple[Program, int]] = {}

    def slot_changed(self, change: SlotChanged) -> None:
        """The slot's process changed (either may be None): the index follows."""
        old, new = change.old.pid, change.new.pid
        if old == new:
            return
        if old is not None:
            self._slots.pop(old, None)
        if new is not None:
            self._slots[new] = (change.generation, change.new.instance)

    def route(self, deliver: Deliver) -> Callable[[Notified], None]:
        """A worker's datagram (`event.pid`: the worker it was attributed to) delivered
        to its slot; one from a process that holds no slot is dropped."""

        def notified(event: Notified) -> None:
            key = self._slots.get(event.pid)
            if key is not None:
                deliver(key[0], key[1], event)

        return notified

    def owner(self, pid: int, session_of: Callable[[int], int | None]) -> int | None:
        """The worker a process belongs to: the worker itself, or a process of the session
        it leads (`session_of` is asked only then)."""
        if pid in self._slots:
            return pid
        session = session_of(pid)
        return session if session in self._slots else None
