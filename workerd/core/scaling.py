"""The autoscaler's policy: from a queue reading to a wanted process count.

Pure: the shell reads the source, the memory and the load, and passes them in with
`now`; the policy returns the new state and, when the count changes, a Decision
(from, to, why) to log, show and count.

- desired = ceil(depth / per_worker), clamped to [min, max]; with min = 0 one
  process starts as soon as depth > 0.
- Up is immediate; down only to the highest desired seen in `scale_down_delay`.
- With `max_age`, an oldest job older than that wants at least running + 1.
- A reading that failed holds the count where it is (a broken source never scales
  a program down) and records the error with when it started. In the window it
  counts as a reading that wanted the count it held, so after an outage the count
  comes down only once scale_down_delay has passed since the last failed reading,
  as after a peak. The first failure and the first good reading after them are
  reported, for the shell to log the outage once.
- While the box is short of memory or loaded (`gate`), nothing scales up above min.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ScalePolicy:
    minimum: int
    maximum: int
    per_worker: int
    scale_down_delay: float
    max_age: float | None = None
    #: The box comes first ([daemon]): no scale-up above min while less memory than
    #: this is available, or while the load per core is above max_load (0: off).
    reserve_memory: int = 0
    max_load: float = 0.0


@dataclass(frozen=True)
class QueueReading:
    depth: int
    #: Age in seconds of the oldest job, where the source can tell.
    age: float | None = None


@dataclass(frozen=True)
class Decision:
    before: int
    after: int
    why: str


@dataclass(frozen=True)
class ScaleState:
    """What the autoscaler knows about one program."""

    desired: int
    #: (at, desired wanted by that reading) within scale_down_delay, oldest first;
    #: a failed reading holds the count it found.
    window: tuple[tuple[float, int], ...] = ()
    last_reading: QueueReading | None = None
    last_decision: Decision | None = None
    #: Why the count is held below what the queue wants (memory, load), if it is.
    held: str | None = None
    error: str | None = None
    error_since: float | None = None
    #: The last dead-letter count read, or why it could not be (never used for scaling).
    dead_letters: int | None = None
    dead_letter_error: str | None = None


@dataclass(frozen=True)
class Headroom:
    """What the box has to spare, as the shell read it with a queue reading."""

    #: MemAvailable, in bytes; None where it is unknown (or not asked for).
    available_memory: int | None = None
    #: The 1-minute load average divided by the cores.
    load_per_core: float = 0.0


@dataclass(frozen=True)
class Depth:
    """The queue was read, and the box with it."""

    reading: QueueReading
    headroom: Headroom = Headroom()


@dataclass(frozen=True)
class ReadFailed:
    """The queue could not be read (an error, a timeout)."""

    error: str


@dataclass(frozen=True)
class DeadLettersRead:
    """The dead letters were counted (`count`) or could not be (`error`)."""

    count: int | None
    error: str | None = None


QueueEvent = Depth | ReadFailed | DeadLettersRead


@dataclass(frozen=True)
class Outcome:
    """What an event changed, for the shell to log, count and act on."""

    decision: Decision | None = None
    #: This failure starts an outage (logged once).
    outage_started: bool = False
    #: How long the source had failed, when this reading ends an outage.
    recovered_after: float | None = None


def initial(policy: ScalePolicy) -> ScaleState:
    """Before the first reading: the minimum."""
    return ScaleState(desired=policy.minimum)


def reconfigured(policy: ScalePolicy, state: ScaleState | None, occupied: int) -> ScaleState:
    """The state after a (re)load with `policy`: a reload keeps the count, within the new
    bounds, and the scale-down window; a program that was not autoscaled keeps the
    count it runs (`occupied`), within the bounds."""
    current = occupied if state is None else state.desired
    desired = min(max(current, policy.minimum), policy.maximum)
    return ScaleState(desired) if state is None else replace(state, desired=desired)


def apply(policy: ScalePolicy, state: ScaleState, event: QueueEvent, running: int,
          now: float) -> tuple[ScaleState, Outcome]:
    """Apply one event about the program's queue; `running`: its processes running now."""
    if isinstance(event, Depth):
        blocked = gate(policy, event.headroom)
        state, decision, recovered_after = on_reading(policy, state, event.reading, running, blocked, now)
        return state, Outcome(decision=decision, recovered_after=recovered_after)
    if isinstance(event, ReadFailed):
        state, started = on_error(policy, state, event.error, now)
        return state, Outcome(outage_started=started)
    return replace(state, dead_letters=event.count, dead_letter_error=event.error), Outcome()


def gate(policy: ScalePolicy, headroom: Headroom) -> str | None:
    """Why scaling up is not allowed now (memory short or box loaded), or None."""
    available, reserve = headroom.available_memory, policy.reserve_memory
    if reserve and available is not None and available < reserve:
        return f"memory available {available >> 20} MiB < reserve_memory {reserve >> 20} MiB"
    if policy.max_load and headroom.load_per_core > policy.max_load:
        return f"load {headroom.load_per_core:.2f} per core > max_load {policy.max_load:g}"
    return None


def wanted_by(policy: ScalePolicy, reading: QueueReading, running: int) -> tuple[int, str]:
    """The count one reading asks for, and why."""
    want = math.ceil(reading.depth / policy.per_worker) if reading.depth > 0 else 0
    why = f"depth {reading.depth} / per_worker {policy.per_worker}"
    too_old = policy.max_age is not None and reading.age is not None and reading.age > policy.max_age
    if too_old and running + 1 > want:
        want = running + 1
        why = f"oldest job {reading.age:.1f}s > max_age {policy.max_age:g}s"
    clamped = min(max(want, policy.minimum), policy.maximum)
    if clamped != want:
        why += f", clamped to [{policy.minimum}, {policy.maximum}]"
    return clamped, why


def _remember(policy: ScalePolicy, state: ScaleState, now: float, want: int) -> tuple[tuple[float, int], ...]:
    """The window with `want` at `now` added and what scale_down_delay left behind dropped."""
    horizon = now - policy.scale_down_delay
    return (*((at, n) for at, n in state.window if at > horizon), (now, want))


def on_reading(
    policy: ScalePolicy, state: ScaleState, reading: QueueReading, running: int, gate: str | None, now: float
) -> tuple[ScaleState, Decision | None, float | None]:
    """Apply one successful reading. `gate` says why scaling up is not allowed now.

    The third value is how long the source had failed when this reading ends an
    outage, else None."""
    want, why = wanted_by(policy, reading, running)
    window = _remember(policy, state, now, want)
    target = max(n for _, n in window)
    if target < state.desired:
        why = f"{why}; highest in the last {policy.scale_down_delay:g}s: {target}"
    held = None
    if target > state.desired and gate is not None:
        ceiling = max(state.desired, policy.minimum)
        if target > ceiling:
            held = f"holding at {ceiling} (queue wants {target}): {gate}"
            target = ceiling
    recovered_after = now - state.error_since if state.error_since is not None else None
    new = replace(state, window=window, last_reading=reading, held=held, error=None, error_since=None)
    if target == state.desired:
        return new, None, recovered_after
    decision = Decision(state.desired, target, why)
    return replace(new, desired=target, last_decision=decision), decision, recovered_after


def on_error(policy: ScalePolicy, state: ScaleState, error: str, now: float) -> tuple[ScaleState, bool]:
    """A failed reading: hold the count, also in the window; remember the error and
    since when. True when this failure starts an outage."""
    since = now if state.error_since is None else state.error_since
    window = _remember(policy, state, now, state.desired)
    return replace(state, window=window, error=error, error_since=since), state.error_since is None
