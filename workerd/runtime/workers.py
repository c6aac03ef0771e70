"""Which slot each live worker process is in: where a notify datagram from it, or from
a process of its session, goes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

#: A slot's name: its program generation and instance (see supervisor.SlotKey).
K = TypeVar("K")


class WorkerIndex(Generic[K]):
    def __init__(self) -> None:
        self._slots: dict[int, K] = {}

    def moved(self, slot: K, old: int | None, new: int | None) -> None:
        """The slot's process changed from `old` to `new` (either may be None)."""
        if old is not None:
            self._slots.pop(old, None)
        if new is not None:
            self._slots[new] = slot

    def slot_of(self, pid: int) -> K | None:
        return self._slots.get(pid)

    def owner(self, pid: int, session_of: Callable[[int], int | None]) -> int | None:
        """The worker a process belongs to: the worker itself, or a process of the session
        it leads (`session_of` is asked only then)."""
        if pid in self._slots:
            return pid
        session = session_of(pid)
        return session if session in self._slots else None
