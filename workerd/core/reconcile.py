"""Wanted count vs actual slots -> which slots to start and which to stop.

Commands such as `scale`, `stop`, a reload or the autoscaler only change a
program's wanted count; this function brings the slots in line. It is idempotent:
calling it twice, or after a doubled or missed event, asks for nothing more.
"""

from __future__ import annotations

from collections.abc import Mapping

from workerd.core.events import StartRequested, StopRequested
from workerd.core.lifecycle import Slot
from workerd.core.states import AT_REST, State

#: Which occupied slots go first on scale-down: ones with no process, then the least far along.
_STOP_ORDER = {State.FATAL: 0, State.EXITED: 0, State.BACKOFF: 1, State.STARTING: 2, State.RUNNING: 3}


def wanted_count(*, keep: int | None, enabled: bool, removing: bool, pinned: int | None, scaled: int | None,
                 configured: int) -> int:
    """How many processes a program wants, the first rule that applies winning: an
    outgoing generation keeps what the handover left it (`keep`); a program stopped by
    `workerctl stop` or dropped by a reload wants none; a `workerctl scale` pin; the
    autoscaler's count (`scaled`); the config's `processes`."""
    if keep is not None:
        return keep
    if not enabled or removing:
        return 0
    if pinned is not None:
        return pinned
    return scaled if scaled is not None else configured


def forgotten(slot: Slot, enabled: bool) -> bool:
    """A slot stopped for good and no longer occupied is scaled away: it stops existing.
    A program stopped by `workerctl stop` keeps its slots, listed as stopped."""
    return slot.state is State.STOPPED and not slot.occupied and enabled


def reconcile(wanted: int, slots: Mapping[int, Slot]) -> list[tuple[int, StartRequested | StopRequested]]:
    """Return (instance, request) pairs that make the occupied slots number `wanted`.

    A slot is occupied (`Slot.occupied`) while it holds a place: running, on its way up, waiting
    in backoff, or at rest as exited/fatal (it keeps its place; SPEC shows it).
    Missing slots take the lowest free instance numbers; surplus ones are stopped,
    the least useful first: those with no process, then those on their way up, then
    running ones that are idle (a worker that never says BUSY=1 counts as idle), busy
    ones last; the most recently started first among equals.
    """
    occupied = [s for s in slots.values() if s.occupied]
    requests: list[tuple[int, StartRequested | StopRequested]] = []
    if len(occupied) < wanted:
        taken = {s.instance for s in occupied}
        instance = 0
        for _ in range(wanted - len(occupied)):
            while instance in taken:
                instance += 1
            requests.append((instance, StartRequested()))
            taken.add(instance)
    elif len(occupied) > wanted:
        def usefulness(s: Slot) -> tuple[int, bool, float, int]:
            started = s.started_at if s.started_at is not None else float("inf")
            return (_STOP_ORDER.get(s.state, 4), s.busy_since is not None, -started, -s.instance)

        for victim in sorted(occupied, key=usefulness)[: len(occupied) - wanted]:
            requests.append((victim.instance, StopRequested()))
    return requests


def restart(slots: Mapping[int, Slot]) -> list[tuple[int, StartRequested | StopRequested]]:
    """Stop, then start again, every slot that is occupied or still has a process.

    Stop first: the new process starts only once the old one has exited (the slot
    is stopping and still occupied, and lifecycle spawns on the exit), so a worker
    never runs twice in one slot. A slot at rest and unoccupied stays as it is.
    """
    requests: list[tuple[int, StartRequested | StopRequested]] = []
    for s in slots.values():
        if s.occupied or s.state not in AT_REST:
            requests += [(s.instance, StopRequested()), (s.instance, StartRequested())]
    return requests


def start(slots: Mapping[int, Slot]) -> list[tuple[int, StartRequested]]:
    """Asked to start a program: its slots that ended (exited, fatal) or wait in backoff
    start now; the ones on their way need nothing, and reconcile adds missing ones."""
    return [(s.instance, StartRequested()) for s in slots.values()
            if s.state in (State.EXITED, State.FATAL, State.BACKOFF)]
