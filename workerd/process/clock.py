"""The one clock: monotonic seconds from the loop, and every timer armed on it (so a
test's FakeClock drives them all); `Deadlines`, one timer per key on it.

What arrived before a deadline counts before it: when a timer of `Deadlines` fires,
`before()` reads what is waiting (the notify socket's datagrams) first, and a deadline
that this moved is not acted on. After a stall (the daemon stopped, a long step of the
loop) an expired timer and a worker's WATCHDOG=1 sent in time are both due, and the loop
runs its timers before it polls again: without this, a healthy worker was restarted for
the watchdog.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

K = TypeVar("K", bound=Hashable)


class Clock(Protocol):
    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle: ...


class LoopClock:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def now(self) -> float:
        return self._loop.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self._loop.call_at(when, callback)

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self._loop.call_later(delay, callback)


class Deadlines(Generic[K]):
    """Each key's one deadline (a slot's `Slot.timer_at`) as a timer on the Clock."""

    def __init__(self, clock: Clock, fire: Callable[[K], None]) -> None:
        """`fire(key)`: the deadline armed for `key` has come and nothing moved it."""
        self._clock = clock
        self._fire = fire
        self._timers: dict[K, asyncio.TimerHandle] = {}
        #: Reads what is waiting before a deadline is acted on (the daemon sets it).
        self.before: Callable[[], None] = lambda: None

    def arm(self, key: K, at: float | None) -> None:
        """`key`'s deadline is now `at` (None: it has none); replaces the one it had."""
        self.cancel(key)
        if at is not None:
            self._timers[key] = self._clock.call_at(at, lambda: self._expired(key))

    def cancel(self, key: K) -> None:
        handle = self._timers.pop(key, None)
        if handle is not None:
            handle.cancel()

    def _expired(self, key: K) -> None:
        del self._timers[key]
        self.before()
        if key not in self._timers:  # else what was read moved the deadline
            self._fire(key)
