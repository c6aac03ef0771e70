"""Requests that answer once an outcome is reached (`workerctl start|stop|restart`).

Each waiter is a check over the slots of some programs, re-run after every batch of
events the supervisor applies, until it answers (ok, message)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from workerd.core.lifecycle import Slot
from workerd.core.states import State
from workerd.runtime.program import Program

Outcome = tuple[bool, str]


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

    def _slots(self, names: tuple[str, ...]) -> list[tuple[str, Slot]]:
        """The slots of the programs' current generations."""
        return [(n, s) for n in names if n in self._programs for s in self._programs[n].slots.values()]

    def _started(self, names: tuple[str, ...]) -> Callable[[], Outcome | None]:
        """Running (or ended on purpose); a slot in backoff or fatal fails the request."""
        def check() -> Outcome | None:
            failed = [f"{n}[{s.instance}]: {s.state.value} ({s.reason or s.last_exit})"
                      for n, s in self._slots(names) if s.state in (State.BACKOFF, State.FATAL)]
            if failed:
                return False, "; ".join(failed)
            if any(s.state in (State.STARTING, State.STOPPING) for _, s in self._slots(names)):
                return None
            programs = [self._programs[n] for n in names if n in self._programs]
            if any(sum(1 for s in p.slots.values() if s.wanted) < p.wanted for p in programs):
                return None
            return True, f"started: {', '.join(names)}"
        return check

    def _stopped(self, names: tuple[str, ...]) -> Callable[[], Outcome | None]:
        def check() -> Outcome | None:
            if all(self._programs[n].at_rest for n in names if n in self._programs):
                return True, f"stopped: {', '.join(names)}"
            return None
        return check
