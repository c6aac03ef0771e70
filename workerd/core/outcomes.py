"""When a request that waits (`workerctl start|stop|restart`) has its answer.

Re-asked after every batch of events; None means "not yet".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from workerd.core.lifecycle import Slot
from workerd.core.states import AT_REST, State

Outcome = tuple[bool, str]


def started(programs: Mapping[str, tuple[Sequence[Slot], int]]) -> Outcome | None:
    """`programs`: name -> (its slots, how many it wants). Started once every occupied slot
    runs (or ended on purpose); a slot in backoff or fatal fails the request, with why."""
    failed = [f"{name}[{s.instance}]: {s.state.value} ({s.reason or s.last_exit})"
              for name, (slots, _) in programs.items() for s in slots if s.state in (State.BACKOFF, State.FATAL)]
    if failed:
        return False, "; ".join(failed)
    for slots, wanted in programs.values():
        if any(s.state in (State.STARTING, State.STOPPING) for s in slots):
            return None
        if sum(1 for s in slots if s.occupied) < wanted:
            return None
    return True, f"started: {', '.join(programs)}"


def stopped(programs: Mapping[str, Sequence[Slot]]) -> Outcome | None:
    """`programs`: name -> every slot of every generation. Stopped once all are at rest."""
    if all(s.state in AT_REST for slots in programs.values() for s in slots):
        return True, f"stopped: {', '.join(programs)}"
    return None
