"""Wanted count vs slots. Requests are applied through `transition`, as the shell does,
so doubled, dropped and reordered events are checked against the real state machine."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.policies import policy_with
from workerd.core.events import (
    Event,
    Exited,
    KillRequested,
    Spawned,
    SpawnFailed,
    StartRequested,
    StopRequested,
    TimerExpired,
)
from workerd.core.lifecycle import Slot, transition
from workerd.core.reconcile import reconcile
from workerd.core.states import State

POLICY = policy_with()

Slots = dict[int, Slot]


def slot(instance: int, state: State, occupied: bool = True, **fields: Any) -> Slot:
    if state in (State.STARTING, State.RUNNING, State.STOPPING):
        fields.setdefault("pid", 100 + instance)
        fields.setdefault("started_at", float(instance))
    return Slot(instance, state=state, occupied=occupied, **fields)


def slots(*items: Slot) -> Slots:
    return {s.instance: s for s in items}


def deliver(table: Slots, instance: int, event: Event, now: float = 0.0) -> None:
    """Apply one event as the supervisor does, forgetting a slot that was scaled away."""
    new, _ = transition(table.get(instance) or Slot(instance), event, now, POLICY, lambda: 0.5)
    table[instance] = new
    if new.state is State.STOPPED and not new.occupied:
        del table[instance]


def settle(wanted: int, table: Slots, now: float = 0.0, drop: int = 0) -> None:
    """Reconcile and apply the requests, losing the first `drop` of them."""
    for instance, request in reconcile(wanted, table)[drop:]:
        deliver(table, instance, request, now)


def occupied(table: Slots) -> list[int]:
    return sorted(s.instance for s in table.values() if s.occupied)


def stopped_by(wanted: int, table: Slots) -> list[int]:
    requests = reconcile(wanted, table)
    assert all(isinstance(r, StopRequested) for _, r in requests)
    return [instance for instance, _ in requests]


# -- scale up --------------------------------------------------------------------------


def test_fill_from_empty() -> None:
    assert reconcile(3, {}) == [(0, StartRequested()), (1, StartRequested()), (2, StartRequested())]


def test_new_slots_take_the_lowest_free_instances() -> None:
    table = slots(slot(0, State.RUNNING), slot(2, State.RUNNING), slot(5, State.BACKOFF))
    assert reconcile(5, table) == [(1, StartRequested()), (3, StartRequested())]


def test_nothing_to_do_when_the_count_is_right() -> None:
    table = slots(slot(0, State.RUNNING), slot(1, State.BACKOFF), slot(2, State.FATAL), slot(3, State.EXITED))
    assert reconcile(4, table) == []


def test_a_stopping_slot_restarting_counts() -> None:
    assert reconcile(1, slots(slot(0, State.STOPPING, occupied=True))) == []


def test_a_stopping_slot_not_wanted_does_not_count() -> None:
    table = slots(slot(0, State.RUNNING), slot(1, State.STOPPING, occupied=False))
    assert reconcile(2, table) == [(1, StartRequested())]
    settle(2, table)
    assert table[1].state is State.STOPPING and table[1].occupied  # it restarts once its process exits
    assert reconcile(2, table) == []


def test_reconcile_is_idempotent_once_requests_are_applied() -> None:
    table: Slots = {}
    settle(3, table)
    assert occupied(table) == [0, 1, 2]
    assert all(s.state is State.STARTING for s in table.values())
    assert reconcile(3, table) == []


def test_a_doubled_start_does_not_add_a_worker() -> None:
    table: Slots = {}
    settle(3, table)
    deliver(table, 0, StartRequested())
    deliver(table, 2, StartRequested())
    assert reconcile(3, table) == []
    assert occupied(table) == [0, 1, 2]


def test_a_doubled_stop_does_not_remove_a_second_worker() -> None:
    table = slots(*(slot(i, State.RUNNING) for i in range(4)))
    settle(2, table)
    victims = [i for i in range(4) if not table[i].occupied]
    deliver(table, victims[0], StopRequested())
    assert reconcile(2, table) == []
    assert len(occupied(table)) == 2


def test_a_lost_request_is_asked_for_again() -> None:
    table: Slots = {}
    settle(3, table, drop=1)
    assert occupied(table) == [1, 2]
    assert reconcile(3, table) == [(0, StartRequested())]
    settle(3, table)
    assert occupied(table) == [0, 1, 2]


# -- scale down ------------------------------------------------------------------------


def test_scale_to_zero_stops_everything() -> None:
    table = slots(slot(0, State.RUNNING), slot(1, State.STARTING), slot(2, State.BACKOFF), slot(3, State.FATAL))
    assert sorted(stopped_by(0, table)) == [0, 1, 2, 3]


def test_scale_down_stops_slots_at_rest_first() -> None:
    table = slots(slot(0, State.RUNNING), slot(1, State.EXITED), slot(2, State.RUNNING), slot(3, State.FATAL))
    assert sorted(stopped_by(2, table)) == [1, 3]


def test_scale_down_stops_backoff_before_live_workers() -> None:
    table = slots(slot(0, State.RUNNING), slot(1, State.BACKOFF, timer_at=9.0), slot(2, State.STARTING))
    assert stopped_by(2, table) == [1]


def test_scale_down_stops_at_rest_before_backoff() -> None:
    table = slots(slot(0, State.FATAL), slot(1, State.BACKOFF, timer_at=9.0), slot(2, State.RUNNING))
    assert stopped_by(2, table) == [0]


def test_scale_down_then_stops_the_most_recently_started() -> None:
    table = slots(
        slot(0, State.RUNNING, started_at=50.0),
        slot(1, State.RUNNING, started_at=10.0),
        slot(2, State.RUNNING, started_at=90.0),
        slot(3, State.RUNNING, started_at=30.0),
    )
    assert stopped_by(2, table) == [2, 0]


def test_scale_down_stops_a_worker_still_starting_before_running_ones() -> None:
    table = slots(slot(0, State.STARTING, started_at=5.0), slot(1, State.RUNNING, started_at=80.0))
    assert stopped_by(1, table) == [0]


def test_scale_down_ignores_slots_already_stopping() -> None:
    table = slots(slot(0, State.RUNNING), slot(1, State.RUNNING), slot(2, State.STOPPING, occupied=False))
    assert stopped_by(1, table) == [1]


# -- property: whatever happens, one pass of reconcile makes the count right -----------

INSTANCES = st.integers(0, 7)
OPS = st.one_of(
    st.tuples(st.just("scale"), st.integers(0, 6)),
    st.tuples(
        st.sampled_from(["spawned", "exited", "spawn_failed", "timer", "start", "stop", "kill"]),
        INSTANCES,
    ),
)
STEPS = st.lists(st.tuples(OPS, st.booleans(), st.booleans(), st.floats(0.0, 700.0)), max_size=60)


@settings(deadline=None, max_examples=300)
@given(st.integers(0, 6), STEPS)
def test_after_reconcile_the_wanted_slots_number_the_wanted_count(
    wanted: int, steps: list[tuple[tuple[str, int], bool, bool, float]]
) -> None:
    table: Slots = {}
    now, next_pid = 0.0, 1000
    settle(wanted, table)
    for (kind, arg), flag, drop, elapsed in steps:
        now += elapsed
        current = table.get(arg)
        if kind == "scale":
            wanted = arg
        elif kind == "spawned":
            next_pid += 1
            deliver(table, arg, Spawned(next_pid), now)
        elif kind == "exited":
            pid = current.pid if current and current.pid and flag else 999  # flag False: a stale pid
            deliver(table, arg, Exited(pid, flag, "exit status 1"), now)
        elif kind == "spawn_failed":
            deliver(table, arg, SpawnFailed("exec: failed"), now)
        elif kind == "timer":
            if current and current.timer_at is not None:
                now = max(now, current.timer_at)
            deliver(table, arg, TimerExpired(), now)
        else:  # a doubled or stray request from outside
            requests: dict[str, Event] = {"start": StartRequested(), "stop": StopRequested(), "kill": KillRequested()}
            deliver(table, arg, requests[kind], now)
        if drop:
            settle(wanted, table, now, drop=1)
        settle(wanted, table, now)
        assert len(occupied(table)) == wanted
        assert reconcile(wanted, table) == []


def test_restart_stops_then_starts_every_slot_with_a_process_or_a_place():
    from workerd.core.reconcile import restart

    table = slots(slot(0, State.RUNNING), slot(1, State.BACKOFF), slot(2, State.STOPPING, occupied=False),
                  slot(3, State.STOPPED, occupied=False), slot(4, State.FATAL))
    requests = restart(table)
    assert [(i, type(r).__name__) for i, r in requests] == [
        (0, "StopRequested"), (0, "StartRequested"), (1, "StopRequested"), (1, "StartRequested"),
        (2, "StopRequested"), (2, "StartRequested"), (4, "StopRequested"), (4, "StartRequested"),
    ]
    # applied through the state machine: the running one is stopping and will come back
    for instance, request in requests:
        deliver(table, instance, request)
    assert table[0].state is State.STOPPING and table[0].occupied
    assert table[1].state is State.STARTING and table[4].state is State.STARTING


def test_start_wakes_the_slots_that_ended_or_wait_in_backoff():
    from workerd.core.reconcile import start

    table = slots(slot(0, State.RUNNING), slot(1, State.BACKOFF), slot(2, State.EXITED), slot(3, State.FATAL),
                  slot(4, State.STARTING))
    assert [(i, type(r).__name__) for i, r in start(table)] == [
        (1, "StartRequested"), (2, "StartRequested"), (3, "StartRequested")]


def test_wanted_count_rules_in_order():
    from workerd.core.reconcile import wanted_count

    base = dict(keep=None, enabled=True, removing=False, pinned=None, scaled=None, configured=3)
    assert wanted_count(**base) == 3
    assert wanted_count(**{**base, "scaled": 5}) == 5
    assert wanted_count(**{**base, "scaled": 5, "pinned": 1}) == 1
    assert wanted_count(**{**base, "pinned": 1, "enabled": False}) == 0
    assert wanted_count(**{**base, "removing": True}) == 0
    assert wanted_count(**{**base, "keep": 2, "enabled": False, "removing": True}) == 2


def test_a_slot_is_forgotten_only_when_scaled_away():
    from workerd.core.reconcile import forgotten

    assert forgotten(slot(0, State.STOPPED, occupied=False), enabled=True)
    assert not forgotten(slot(0, State.STOPPED, occupied=False), enabled=False)  # `workerctl stop`: listed
    assert not forgotten(slot(0, State.STOPPED, occupied=True), enabled=True)
    assert not forgotten(slot(0, State.EXITED, occupied=False), enabled=True)


def test_scale_down_stops_idle_workers_before_busy_ones():
    """3 busy and 2 idle running: scaling 5 -> 3 stops the 2 idle ones, even the oldest."""
    table = slots(*(slot(i, State.RUNNING, started_at=float(i)) for i in range(5)))
    for busy in (2, 3, 4):
        table[busy] = replace(table[busy], busy_since=50.0)
    assert sorted(stopped_by(3, table)) == [0, 1]
    assert stopped_by(1, table) == [1, 0, 4, 3], "idle ones first, then busy, the newest first"
