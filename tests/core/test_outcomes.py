"""When `workerctl start|stop|restart` answer: pure checks over slots."""

from __future__ import annotations

from workerd.core.lifecycle import Slot
from workerd.core.outcomes import started, stopped
from workerd.core.states import State


def slot(instance: int, state: State, occupied: bool = True, **fields) -> Slot:
    return Slot(instance, state=state, occupied=occupied, **fields)


def test_started_waits_for_every_wanted_slot_to_run():
    assert started({"w": ([slot(0, State.RUNNING), slot(1, State.STARTING)], 2)}) is None
    assert started({"w": ([slot(0, State.RUNNING)], 2)}) is None  # the second slot is not there yet
    assert started({"w": ([slot(0, State.RUNNING), slot(1, State.RUNNING)], 2)}) == (True, "started: w")


def test_a_slot_that_ended_on_purpose_counts_as_started():
    assert started({"w": ([slot(0, State.EXITED, last_exit="exit status 0")], 1)}) == (True, "started: w")


def test_backoff_or_fatal_fails_the_start_with_the_reason():
    outcome = started({"a": ([slot(0, State.BACKOFF, reason="exit status 1; restarting in 1.0s")], 1),
                       "b": ([slot(0, State.FATAL, last_exit="exec x: not found in PATH")], 1)})
    assert outcome == (False, "a[0]: backoff (exit status 1; restarting in 1.0s); "
                              "b[0]: fatal (exec x: not found in PATH)")


def test_stopped_once_every_slot_of_every_generation_is_at_rest():
    assert stopped({"w": [slot(0, State.STOPPED, occupied=False), slot(0, State.STOPPING, occupied=False)]}) is None
    assert stopped({"w": [slot(0, State.STOPPED, occupied=False), slot(1, State.FATAL)]}) == (True, "stopped: w")
