"""The daemon's log lines about what the supervisor decided: a slot's new state, a
scaling decision, a queue source that fails or answers again. One place, so every
line of one kind reads alike and the supervisor stays about applying events (the
daemon subscribes these to its feed, runtime/feed.py)."""

from __future__ import annotations

import logging

from workerd.core.states import State
from workerd.runtime.feed import QueueRead, SlotChanged

log = logging.getLogger("workerd")


def slot_changed(change: SlotChanged) -> None:
    """A line for a slot whose state changed (nothing for an event that left it as it was)."""
    old, new = change.old, change.new
    label = f"{change.program}[{new.instance}]"
    if new.state is old.state:
        return
    if new.state is State.RUNNING:
        log.info("%s: running (pid %s)", label, new.pid)
    elif new.state is State.BACKOFF:
        log.warning("%s: %s", label, new.reason)
    elif new.state is State.FATAL:
        log.error("%s: fatal: %s", label, new.reason)
    elif new.state is State.EXITED:
        log.info("%s: exited (%s), not restarting", label, new.last_exit)
    elif new.state is State.STOPPED:
        log.info("%s: stopped (%s)", label, new.last_exit or "not running")
    elif new.state is State.STARTING and old.pid is not None and old.state is not State.STOPPING:
        log.warning("%s: %s; restarting", label, new.last_exit)
    elif new.state is State.STOPPING and new.forced is not None and old.forced is None:
        log.warning("%s: %s: stopping it", label, new.reason)


def queue_read(read: QueueRead) -> None:
    """An outage is logged once at its start and once at its end; every decision once."""
    name, outcome, desired, error = read.program, read.outcome, read.desired, read.error
    if outcome.outage_started:
        log.warning("%s: queue source failing: %s; holding at %d", name, error, desired)
    if outcome.recovered_after is not None:
        log.info("%s: queue source answers again after %.1fs", name, outcome.recovered_after)
    decision = outcome.decision
    if decision is not None:
        direction = "up" if decision.after > decision.before else "down"
        log.info("%s: scale %s %d -> %d (%s)", name, direction, decision.before, decision.after, decision.why)
