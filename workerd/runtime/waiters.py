"""Requests that answer once an outcome is reached (`workerctl start|stop|restart`).

Each waiter is a check over the slots of some programs (core/outcomes.py decides),
re-run after every batch of events the supervisor applies, until it answers (ok,
message)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from workerd.core import outcomes
from workerd.core.outcomes import Outcome
from workerd.runtime.program import Program


@dataclass
class _Waiter:
    #: Returns None while waiting, else the outcome.
    check: Callable[[], Outcome | None]
    future: asyncio.Future[Outcome]


class Waiters:
    def __init__(self, programs: Mapping[str, Program]) -> None:
        #: The supervisor's own (live) map of programs.
        self._programs = programs
        self._waiters: list[_Waiter] = []

    def add(self, names: tuple[str, ...], target: str) -> asyncio.Future[Outcome]:
        """A future resolved when the programs reach `target` ("started" or "stopped")."""
        check = self._started(names) if target == "started" else self._stopped(names)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiters.append(_Waiter(check, future))
        self.check()
        return future

    def check(self) -> None:
        pending = []
        for waiter in self._waiters:
            if waiter.future.done():
                continue
            outcome = waiter.check()
            if outcome is None:
                pending.append(waiter)
            else:
                waiter.future.set_result(outcome)
        self._waiters = pending

    def _started(self, names: tuple[str, ...]) -> Callable[[], Outcome | None]:
        def check() -> Outcome | None:
            present = [self._programs[n] for n in names if n in self._programs]
            return outcomes.started({p.name: (list(p.slots.values()), p.target_now) for p in present})
        return check

    def _stopped(self, names: tuple[str, ...]) -> Callable[[], Outcome | None]:
        def check() -> Outcome | None:
            present = [self._programs[n] for n in names if n in self._programs]
            return outcomes.stopped({p.name: [s for g in p.generations() for s in g.slots.values()] for p in present})
        return check
