"""One test per labelled edge of `transition`, plus its guards and a few properties.

The clock is a number moved by hand; `rand` returns 0.5, where jitter has no effect,
so backoff delays are exact. Policy (tests/core/policies.py): start_seconds 1,
stop_timeout 30, backoff 1s * 2**k capped at 5s, reset after a 600s run, limits sampled
every second.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.policies import policy_with
from workerd.core.actions import Action, KillGroup, SignalGroup, Spawn
from workerd.core.events import (
    Event,
    Exited,
    KillRequested,
    LimitExceeded,
    Spawned,
    SpawnFailed,
    StartRequested,
    StopRequested,
    TimerExpired,
)
from workerd.core.lifecycle import Policy, Result, Slot, transition
from workerd.core.states import AT_REST, RestartPolicy, State

POLICY = policy_with()
CRASH = "exit status 1"
OVERDUE = "still running 30.0s after SIGTERM"


def half() -> float:
    return 0.5


def step(slot: Slot, event: Event, now: float, policy: Policy = POLICY) -> Result:
    return transition(slot, event, now, policy, half)


def crashed(pid: int, success: bool = False, description: str = CRASH) -> Exited:
    return Exited(pid, success, description)


def assert_fields(slot: Slot, **expected: Any) -> None:
    assert {name: getattr(slot, name) for name in expected} == expected


# -- slots in each state, as the transitions leave them --------------------------------


def spawning_slot(**fields: Any) -> Slot:
    """Starting, Spawn asked for, Spawned not yet seen."""
    return Slot(0, state=State.STARTING, occupied=True, **fields)


def starting_slot(pid: int = 100, started_at: float = 0.0, **fields: Any) -> Slot:
    fields.setdefault("timer_at", started_at + POLICY.start_seconds)
    return Slot(0, state=State.STARTING, occupied=True, pid=pid, started_at=started_at, **fields)


def running_slot(pid: int = 100, started_at: float = 0.0, **fields: Any) -> Slot:
    return Slot(0, state=State.RUNNING, occupied=True, pid=pid, started_at=started_at, **fields)


def stopping_slot(pid: int = 100, occupied: bool = False, timer_at: float | None = 30.0, **fields: Any) -> Slot:
    return Slot(0, state=State.STOPPING, occupied=occupied, pid=pid, started_at=0.0, timer_at=timer_at, **fields)


def backoff_slot(timer_at: float = 11.0, streak: int = 2, **fields: Any) -> Slot:
    fields.setdefault("reason", f"{CRASH}; restarting in 1.0s")
    return Slot(0, state=State.BACKOFF, occupied=True, timer_at=timer_at, streak=streak, restarts=streak, **fields)


def run_to_running(slot: Slot, pid: int, now: float, policy: Policy = POLICY) -> Slot:
    """Spawned, then up for start_seconds."""
    slot, _ = step(slot, Spawned(pid), now, policy)
    if slot.state is State.STARTING:
        assert slot.timer_at is not None
        slot, _ = step(slot, TimerExpired(), slot.timer_at, policy)
    assert slot.state is State.RUNNING
    return slot


# -- stopped -> starting -> running ----------------------------------------------------


def test_stopped_to_starting_on_start_requested() -> None:
    slot, actions = step(Slot(0), StartRequested(), 10.0)
    assert slot == Slot(0, state=State.STARTING, occupied=True)
    assert actions == [Spawn()]


def test_starting_spawned_arms_the_start_seconds_timer() -> None:
    slot, actions = step(spawning_slot(), Spawned(100), 10.0)
    assert_fields(slot, state=State.STARTING, pid=100, started_at=10.0, timer_at=11.0)
    assert actions == []


def test_starting_to_running_on_spawned_when_start_seconds_is_zero() -> None:
    policy = replace(POLICY, start_seconds=0.0)
    slot, actions = step(spawning_slot(failed_starts=2), Spawned(100), 10.0, policy)
    # failed_starts stays until the run ends: the exec may still fail (SpawnFailed after Spawned)
    assert_fields(slot, state=State.RUNNING, pid=100, started_at=10.0, timer_at=None, failed_starts=2)
    assert actions == []


def test_starting_to_running_on_timer_expired() -> None:
    slot, actions = step(starting_slot(started_at=10.0, failed_starts=2, streak=2), TimerExpired(), 11.0)
    assert_fields(slot, state=State.RUNNING, pid=100, timer_at=None, failed_starts=0, streak=2)
    assert actions == []


def test_spawned_is_ignored_unless_a_spawn_is_pending() -> None:
    for slot in (Slot(0), running_slot(), starting_slot(pid=100), backoff_slot()):
        assert step(slot, Spawned(200), 5.0) == (slot, [])


# -- failed starts ---------------------------------------------------------------------


def test_starting_to_backoff_on_exit_before_start_seconds() -> None:
    slot, actions = step(starting_slot(started_at=10.0), crashed(100), 10.5)
    assert_fields(
        slot,
        state=State.BACKOFF,
        occupied=True,
        pid=None,
        timer_at=11.5,
        restarts=1,
        streak=1,
        failed_starts=1,
        last_exit=CRASH,
        reason=f"{CRASH}; restarting in 1.0s",
    )
    assert actions == [KillGroup(100)]


def test_starting_to_backoff_delays_grow_by_factor_up_to_maximum() -> None:
    slot, now, delays = Slot(0), 0.0, []
    slot, _ = step(slot, StartRequested(), now)
    for pid in range(100, 106):
        slot, _ = step(slot, Spawned(pid), now)
        now += 0.5
        slot, actions = step(slot, crashed(pid), now)
        assert slot.state is State.BACKOFF and actions == [KillGroup(pid)]
        assert slot.timer_at is not None
        delays.append(slot.timer_at - now)
        now = slot.timer_at
        slot, actions = step(slot, TimerExpired(), now)
        assert slot.state is State.STARTING and actions == [Spawn()]
    assert delays == pytest.approx([1.0, 2.0, 4.0, 5.0, 5.0, 5.0])
    assert slot.failed_starts == 6 and slot.restarts == 6


def test_starting_to_fatal_when_max_restarts_reached() -> None:
    policy = replace(POLICY, max_restarts=3)
    slot, now = step(Slot(0), StartRequested(), 0.0, policy)[0], 0.0
    for pid in (100, 101, 102):
        slot, _ = step(slot, Spawned(pid), now, policy)
        slot, actions = step(slot, crashed(pid), now + 0.5, policy)
        assert actions == [KillGroup(pid)]
        if pid != 102:
            assert slot.state is State.BACKOFF
            assert slot.timer_at is not None
            now = slot.timer_at
            slot, _ = step(slot, TimerExpired(), now, policy)
    assert_fields(slot, state=State.FATAL, pid=None, timer_at=None, failed_starts=3, last_exit=CRASH)
    assert slot.reason is not None
    assert slot.reason.startswith("gave up after 3 failed starts") and CRASH in slot.reason


def test_a_run_past_start_seconds_ends_the_row_of_failed_starts() -> None:
    policy = replace(POLICY, max_restarts=2)
    slot, _ = step(starting_slot(started_at=10.0, failed_starts=1), TimerExpired(), 11.0, policy)
    slot, _ = step(slot, crashed(100), 20.0, policy)
    assert slot.state is State.STARTING  # a crash after a run, not a second failed start
    slot, _ = step(slot, Spawned(101), 20.0, policy)
    slot, _ = step(slot, crashed(101), 20.5, policy)
    assert_fields(slot, state=State.BACKOFF, failed_starts=1)


def test_starting_to_backoff_on_fork_failure() -> None:
    slot, actions = step(spawning_slot(), SpawnFailed("fork: Resource temporarily unavailable"), 10.0)
    assert_fields(
        slot,
        state=State.BACKOFF,
        pid=None,
        timer_at=11.0,
        restarts=1,
        streak=1,
        failed_starts=1,
        last_exit="fork: Resource temporarily unavailable",
    )
    assert actions == []


def test_starting_to_backoff_on_a_missing_command() -> None:
    slot, actions = step(spawning_slot(), SpawnFailed("exec x: not found in PATH"), 10.1)
    assert_fields(slot, state=State.BACKOFF, pid=None, timer_at=11.1, failed_starts=1, streak=1)
    assert slot.last_exit == "exec x: not found in PATH"
    assert actions == []


def test_spawn_failures_count_toward_max_restarts() -> None:
    """SPEC: a command that cannot be executed is a failed start; max_restarts of them -> fatal."""
    policy = replace(POLICY, start_seconds=0.0, max_restarts=3)
    slot, _ = step(Slot(0), StartRequested(), 0.0, policy)
    now = 0.0
    for _ in range(3):
        slot, _ = step(slot, SpawnFailed("exec x: No such file or directory"), now, policy)
        if slot.state is State.BACKOFF:
            assert slot.timer_at is not None
            now = slot.timer_at
            slot, _ = step(slot, TimerExpired(), now, policy)
    assert_fields(slot, state=State.FATAL, failed_starts=3)


def test_spawn_failed_for_a_slot_with_a_process_is_ignored() -> None:
    for slot in (running_slot(pid=100), starting_slot(), stopping_slot(pid=100)):
        assert step(slot, SpawnFailed("fork: no"), 5.0) == (slot, [])


# -- crashes after a run ---------------------------------------------------------------


def test_running_to_starting_on_first_crash() -> None:
    slot, actions = step(running_slot(started_at=0.0), crashed(100), 50.0)
    assert_fields(
        slot,
        state=State.STARTING,
        occupied=True,
        pid=None,
        started_at=None,
        timer_at=None,
        restarts=1,
        streak=1,
        failed_starts=0,
        last_exit=CRASH,
    )
    assert actions == [KillGroup(100), Spawn()]


def test_running_to_backoff_on_second_crash_within_reset() -> None:
    slot, actions = step(running_slot(pid=101, started_at=50.0, streak=1, restarts=1), crashed(101), 60.0)
    assert_fields(
        slot,
        state=State.BACKOFF,
        pid=None,
        timer_at=61.0,
        restarts=2,
        streak=2,
        failed_starts=0,
        last_exit=CRASH,
        reason=f"{CRASH}; restarting in 1.0s",
    )
    assert actions == [KillGroup(101)]


def test_running_crash_streak_delays_are_immediate_then_initial_then_growing() -> None:
    slot, now, delays = step(Slot(0), StartRequested(), 0.0)[0], 0.0, []
    for pid in range(100, 105):
        slot = run_to_running(slot, pid, now)
        now += 10.0
        slot, _ = step(slot, crashed(pid), now)
        if slot.state is State.STARTING:
            delays.append(0.0)
        else:
            assert slot.timer_at is not None
            delays.append(slot.timer_at - now)
            now = slot.timer_at
            slot, _ = step(slot, TimerExpired(), now)
    assert delays == pytest.approx([0.0, 1.0, 2.0, 4.0, 5.0])


@pytest.mark.parametrize("ran", [600.0, 5000.0])
def test_running_to_starting_after_a_run_of_backoff_reset(ran: float) -> None:
    slot, actions = step(running_slot(started_at=100.0, streak=4, restarts=4), crashed(100), 100.0 + ran)
    assert_fields(slot, state=State.STARTING, streak=1, restarts=5, timer_at=None)
    assert actions == [KillGroup(100), Spawn()]


def test_a_run_just_short_of_backoff_reset_keeps_the_streak() -> None:
    slot, _ = step(running_slot(started_at=100.0, streak=4, restarts=4), crashed(100), 699.0)
    assert_fields(slot, state=State.BACKOFF, streak=5, timer_at=699.0 + 5.0)


def test_running_to_exited_when_restart_is_never() -> None:
    policy = replace(POLICY, restart=RestartPolicy.NEVER)
    slot, actions = step(running_slot(), crashed(100), 50.0, policy)
    assert_fields(slot, state=State.EXITED, occupied=True, pid=None, timer_at=None, restarts=0, last_exit=CRASH)
    assert actions == [KillGroup(100)]


def test_starting_to_exited_when_restart_is_never() -> None:
    policy = replace(POLICY, restart=RestartPolicy.NEVER)
    slot, actions = step(starting_slot(), crashed(100), 0.5, policy)
    assert_fields(slot, state=State.EXITED, pid=None, timer_at=None, restarts=0, failed_starts=1)
    assert actions == [KillGroup(100)]


def test_running_to_exited_on_success_when_restart_is_on_failure() -> None:
    policy = replace(POLICY, restart=RestartPolicy.ON_FAILURE)
    slot, actions = step(running_slot(), crashed(100, success=True, description="exit status 0"), 50.0, policy)
    assert_fields(slot, state=State.EXITED, pid=None, restarts=0, last_exit="exit status 0", reason=None)
    assert actions == [KillGroup(100)]


def test_running_to_starting_on_failure_when_restart_is_on_failure() -> None:
    policy = replace(POLICY, restart=RestartPolicy.ON_FAILURE)
    slot, actions = step(running_slot(), crashed(100), 50.0, policy)
    assert_fields(slot, state=State.STARTING, restarts=1, streak=1)
    assert actions == [KillGroup(100), Spawn()]


def test_exited_with_a_stale_pid_is_ignored() -> None:
    for slot in (running_slot(pid=100), starting_slot(pid=100), stopping_slot(pid=100), backoff_slot(), Slot(0)):
        assert step(slot, crashed(99), 50.0) == (slot, [])


# -- stopping --------------------------------------------------------------------------


def test_running_to_stopping_on_stop_requested() -> None:
    policy = replace(POLICY, stop_signal=2, stop_timeout=12.0)
    slot, actions = step(running_slot(), StopRequested(), 50.0, policy)
    assert_fields(slot, state=State.STOPPING, occupied=False, pid=100, timer_at=62.0)
    assert actions == [SignalGroup(100, 2)]


def test_starting_to_stopping_on_stop_requested() -> None:
    slot, actions = step(starting_slot(started_at=10.0), StopRequested(), 10.5)
    assert_fields(slot, state=State.STOPPING, occupied=False, pid=100, timer_at=40.5)
    assert actions == [SignalGroup(100, 15)]


def test_stopping_kills_the_group_on_timer_expired() -> None:
    slot, actions = step(stopping_slot(timer_at=30.0), TimerExpired(), 30.0)
    assert_fields(slot, state=State.STOPPING, pid=100, timer_at=None, reason=OVERDUE, overdue=OVERDUE)
    assert actions == [KillGroup(100, overdue=OVERDUE)]


def test_stopping_to_stopped_on_exited() -> None:
    slot, actions = step(stopping_slot(restarts=3), crashed(100, description="killed by SIGTERM"), 5.0)
    assert_fields(
        slot, state=State.STOPPED, occupied=False, pid=None, timer_at=None, restarts=3, last_exit="killed by SIGTERM"
    )
    assert actions == [KillGroup(100)]


def test_stopping_to_stopped_after_the_kill() -> None:
    slot, _ = step(stopping_slot(timer_at=30.0), TimerExpired(), 30.0)
    slot, actions = step(slot, crashed(100, description="killed by SIGKILL"), 30.01)
    assert_fields(slot, state=State.STOPPED, pid=None, timer_at=None, reason=OVERDUE,
                  last_exit=f"{OVERDUE}: killed by SIGKILL")
    assert actions == [KillGroup(100)]


def test_stopping_to_starting_on_exited_when_wanted_again() -> None:
    slot, _ = step(running_slot(restarts=2), StopRequested(), 50.0)
    slot, actions = step(slot, StartRequested(), 50.0)
    assert_fields(slot, state=State.STOPPING, occupied=True, pid=100)
    assert actions == []
    slot, actions = step(slot, crashed(100, description="killed by SIGTERM"), 51.0)
    assert_fields(slot, state=State.STARTING, occupied=True, pid=None, timer_at=None, restarts=3)
    assert actions == [KillGroup(100), Spawn()]


def test_stop_requested_while_stopping_or_stopped_sends_nothing() -> None:
    for slot in (stopping_slot(occupied=True), Slot(0)):
        new, actions = step(slot, StopRequested(), 5.0)
        assert new == replace(slot, occupied=False)
        assert actions == []


def test_backoff_to_stopped_on_stop_requested() -> None:
    slot, actions = step(backoff_slot(timer_at=11.0), StopRequested(), 10.0)
    assert_fields(slot, state=State.STOPPED, occupied=False, pid=None, timer_at=None)
    # "restarting in 1.0s" would be a lie about a stopped slot (KillRequested clears it too).
    assert slot.reason is None
    assert actions == []


@pytest.mark.parametrize("state", [State.EXITED, State.FATAL])
def test_exited_or_fatal_to_stopped_on_stop_requested(state: State) -> None:
    slot, actions = step(Slot(0, state=state, occupied=True, last_exit=CRASH), StopRequested(), 10.0)
    assert_fields(slot, state=State.STOPPED, occupied=False, pid=None, timer_at=None, last_exit=CRASH)
    assert actions == []


# -- stop or kill while the spawn is in flight -----------------------------------------


def test_stop_requested_before_spawned_stops_the_new_process() -> None:
    """A stop that arrives between Spawn and Spawned must not leave an unwanted worker running."""
    slot, actions = step(spawning_slot(), StopRequested(), 10.0)
    assert actions == []
    slot, actions = step(slot, Spawned(100), 10.0)
    assert_fields(slot, state=State.STOPPING, occupied=False, pid=100, timer_at=40.0)
    assert actions == [SignalGroup(100, 15)]


def test_stop_requested_before_a_fork_failure_leaves_the_slot_stopped() -> None:
    slot, _ = step(spawning_slot(), StopRequested(), 10.0)
    slot, actions = step(slot, SpawnFailed("fork: Resource temporarily unavailable"), 10.0)
    assert_fields(slot, state=State.STOPPED, occupied=False, pid=None, timer_at=None)
    assert actions == []


# -- backoff ---------------------------------------------------------------------------


def test_backoff_to_starting_on_start_requested() -> None:
    slot, actions = step(backoff_slot(timer_at=11.0, streak=2), StartRequested(), 10.0)
    assert_fields(slot, state=State.STARTING, occupied=True, pid=None, timer_at=None, streak=2, restarts=2)
    assert actions == [Spawn()]


def test_backoff_to_starting_on_timer_expired() -> None:
    slot, actions = step(backoff_slot(timer_at=11.0, streak=2, failed_starts=2), TimerExpired(), 11.0)
    assert_fields(slot, state=State.STARTING, pid=None, timer_at=None, streak=2, restarts=2, failed_starts=2)
    assert actions == [Spawn()]


# -- at rest ---------------------------------------------------------------------------


@pytest.mark.parametrize("state", [State.EXITED, State.FATAL])
def test_exited_or_fatal_to_starting_on_start_requested(state: State) -> None:
    resting = Slot(0, state=state, occupied=True, restarts=7, streak=3, failed_starts=3, last_exit=CRASH, reason="x")
    slot, actions = step(resting, StartRequested(), 100.0)
    assert_fields(
        slot, state=State.STARTING, occupied=True, pid=None, timer_at=None, restarts=7, streak=0, failed_starts=0,
        reason=None,
    )
    assert actions == [Spawn()]


def test_start_requested_while_on_the_way_only_marks_the_slot_wanted() -> None:
    for slot in (spawning_slot(), starting_slot(), running_slot(), stopping_slot(occupied=False)):
        new, actions = step(slot, StartRequested(), 5.0)
        assert new == replace(slot, occupied=True)
        assert actions == []


# -- kill ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "slot", [starting_slot(pid=100), running_slot(pid=100), stopping_slot(pid=100, timer_at=30.0)],
    ids=["starting", "running", "stopping"],
)
def test_alive_to_stopping_on_kill_requested(slot: Slot) -> None:
    new, actions = step(slot, KillRequested(), 10.0)
    assert_fields(new, state=State.STOPPING, occupied=False, pid=100, timer_at=None, reason="killed")
    assert actions == [KillGroup(100)]


def test_backoff_to_stopped_on_kill_requested() -> None:
    slot, actions = step(backoff_slot(timer_at=11.0), KillRequested(), 10.0)
    assert_fields(slot, state=State.STOPPED, occupied=False, pid=None, timer_at=None, reason=None)
    assert actions == []


def test_kill_requested_at_rest_sends_nothing() -> None:
    new, actions = step(Slot(0), KillRequested(), 10.0)
    assert new == Slot(0)
    assert actions == []


def test_exited_or_fatal_to_stopped_on_kill_requested() -> None:
    for state in (State.FATAL, State.EXITED):
        slot = Slot(0, state=state, occupied=True, reason="gave up")
        new, actions = step(slot, KillRequested(), 10.0)
        assert new == replace(slot, state=State.STOPPED, occupied=False, reason=None)
        assert actions == []


# -- guards ----------------------------------------------------------------------------


def test_timer_expired_without_a_timer_is_ignored() -> None:
    for slot in (Slot(0), running_slot(), stopping_slot(timer_at=None), Slot(0, state=State.FATAL, occupied=True)):
        assert step(slot, TimerExpired(), 1000.0) == (slot, [])


def test_an_unknown_event_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        step(Slot(0), object(), 0.0)  # type: ignore[arg-type]


# -- properties over random event sequences --------------------------------------------

PIDS = st.sampled_from([100, 101, 102])
EVENTS: st.SearchStrategy[Event] = st.one_of(
    st.just(StartRequested()),
    st.just(StopRequested()),
    st.just(KillRequested()),
    st.just(TimerExpired()),
    st.builds(Spawned, PIDS),
    st.just(SpawnFailed("exec: failed")),
    st.builds(Exited, PIDS, st.booleans(), st.just(CRASH)),
)
POLICIES = st.builds(
    policy_with,
    restart=st.sampled_from(list(RestartPolicy)),
    start_seconds=st.sampled_from([0.0, 1.0]),
    max_restarts=st.integers(0, 3),
)
HISTORY = st.lists(st.tuples(EVENTS, st.floats(0.0, 700.0)), max_size=40)


def replay(policy: Policy, history: list[tuple[Event, float]]) -> list[tuple[Slot, Slot, list[Action], float]]:
    slot, now, steps = Slot(0), 0.0, []
    for event, elapsed in history:
        now += elapsed
        new, actions = transition(slot, event, now, policy, half)
        steps.append((slot, new, actions, now))
        slot = new
    return steps


@settings(deadline=None)
@given(POLICIES, HISTORY)
def test_slot_facts_stay_consistent(policy: Policy, history: list[tuple[Event, float]]) -> None:
    for old, new, actions, now in replay(policy, history):
        if new.state in AT_REST or new.state is State.BACKOFF:
            assert new.pid is None
        if new.state in AT_REST:
            assert new.timer_at is None
        if new.state is State.BACKOFF:
            assert new.timer_at is not None
        if new.state in (State.RUNNING, State.STOPPING) or (new.timer_at is not None and new.state is State.STARTING):
            assert new.pid is not None
        if new.timer_at is not None and new.timer_at != old.timer_at:
            assert new.timer_at >= now
        for action in actions:
            if isinstance(action, Spawn):
                assert new.state is State.STARTING and new.pid is None
            else:
                assert isinstance(action, (SignalGroup, KillGroup))
                assert action.pgid in (old.pid, new.pid)  # never signal a group that is not the slot's


@settings(deadline=None)
@given(POLICIES, HISTORY)
def test_an_unwanted_slot_never_keeps_a_worker(policy: Policy, history: list[tuple[Event, float]]) -> None:
    """occupied=False: stopped, stopping, or a spawn in flight that will be stopped; occupied=True: never stopped."""
    for _, new, _, _ in replay(policy, history):
        if new.occupied:
            assert new.state is not State.STOPPED
        else:
            assert new.state in (State.STOPPED, State.STOPPING) or (
                new.state is State.STARTING and new.pid is None
            ), new


# -- watched limits (memory, cpu_percent): a graceful restart ------------------------------

#: start_seconds 1 + 2 samples of 1 s: a limit this soon after a start counts as a crash.
LIMITED = policy_with(start_seconds=1.0, sample_interval=1.0)
MEMORY = "memory 69 MiB > 64 MiB"


def test_the_limit_grace_is_start_seconds_and_two_samples() -> None:
    assert LIMITED.limit_grace == 3.0
    assert policy_with(start_seconds=5.0, sample_interval=0.25).limit_grace == 5.5


def over(pid: int = 100, reason: str = MEMORY) -> LimitExceeded:
    return LimitExceeded(pid, reason)


@pytest.mark.parametrize("make", [running_slot, starting_slot], ids=["running", "starting"])
def test_alive_to_stopping_on_limit_exceeded(make: Any) -> None:
    policy = replace(LIMITED, stop_signal=2, stop_timeout=12.0)
    slot, actions = step(make(started_at=0.0, restarts=2, streak=1), over(), 50.0, policy)
    assert_fields(
        slot,
        state=State.STOPPING,
        occupied=True,
        pid=100,
        timer_at=62.0,
        reason=MEMORY,
        last_limit=MEMORY,
        restarts=2,
        streak=1,
    )
    assert actions == [SignalGroup(100, 2)]


def test_limit_exceeded_for_a_stale_pid_is_ignored() -> None:
    for slot in (running_slot(pid=100), starting_slot(pid=100)):
        assert step(slot, over(pid=99), 50.0, LIMITED) == (slot, [])


def test_limit_exceeded_is_ignored_unless_alive_and_wanted() -> None:
    slots = [
        replace(running_slot(pid=100), occupied=False),
        stopping_slot(pid=100, occupied=True, timer_at=30.0),
        stopping_slot(pid=100, occupied=False, timer_at=30.0),
        backoff_slot(),
        Slot(0),
        spawning_slot(),
        Slot(0, state=State.EXITED, occupied=True),
        Slot(0, state=State.FATAL, occupied=True),
    ]
    for slot in slots:
        assert step(slot, over(), 5.0, LIMITED) == (slot, []), slot


def test_a_second_limit_while_stopping_for_one_sends_nothing_more() -> None:
    slot, _ = step(running_slot(), over(), 50.0, LIMITED)
    again, actions = step(slot, over(reason="cpu 99% > 50% over 60s"), 51.0, LIMITED)
    assert again == slot  # no second signal, the stop timeout is not pushed back
    assert actions == []


def test_limit_restart_is_immediate_and_not_a_crash() -> None:
    """Stopping for a limit after a good run, then the exit: restarted at once, the
    crash streak untouched (a limit is not a crash for backoff purposes)."""
    slot, _ = step(running_slot(started_at=0.0, restarts=2, streak=1), over(), 50.0, LIMITED)
    slot, actions = step(slot, crashed(100, description="killed by SIGTERM"), 50.5, LIMITED)
    assert_fields(
        slot,
        state=State.STARTING,
        occupied=True,
        pid=None,
        timer_at=None,
        restarts=3,
        streak=1,
        failed_starts=0,
        last_exit=MEMORY,  # why it stopped, not how its graceful exit went
        last_limit=MEMORY,
    )
    assert actions == [KillGroup(100), Spawn()]


def test_limit_restart_exactly_at_the_grace_is_not_a_crash() -> None:
    slot, _ = step(running_slot(started_at=10.0), over(), 13.0, LIMITED)
    slot, actions = step(slot, crashed(100), 13.1, LIMITED)
    assert_fields(slot, state=State.STARTING, restarts=1, streak=0)
    assert actions == [KillGroup(100), Spawn()]


def test_repeated_limit_restarts_after_good_runs_never_back_off() -> None:
    slot, now = step(Slot(0), StartRequested(), 0.0, LIMITED)[0], 0.0
    for pid in range(100, 110):
        slot = run_to_running(slot, pid, now, LIMITED)
        now += 10.0
        slot, _ = step(slot, over(pid), now, LIMITED)
        assert slot.state is State.STOPPING
        slot, actions = step(slot, crashed(pid, description="killed by SIGTERM"), now + 0.1, LIMITED)
        assert slot.state is State.STARTING and actions == [KillGroup(pid), Spawn()]
    assert_fields(slot, restarts=10, streak=0, last_limit=MEMORY)


def test_limit_restart_after_the_stop_timeout_kill() -> None:
    """A worker that ignores stop_signal: SIGKILL after stop_timeout, then restarted at once."""
    slot, _ = step(running_slot(started_at=0.0), over(), 50.0, LIMITED)
    assert slot.timer_at == 80.0
    slot, actions = step(slot, TimerExpired(), 80.0, LIMITED)
    assert_fields(slot, state=State.STOPPING, occupied=True, pid=100, timer_at=None)
    assert actions == [KillGroup(100, overdue=OVERDUE)]
    slot, actions = step(slot, crashed(100, description="killed by SIGKILL"), 80.01, LIMITED)
    assert_fields(slot, state=State.STARTING, restarts=1, streak=0, last_limit=MEMORY,
                  last_exit=f"{MEMORY}; {OVERDUE}: killed by SIGKILL")
    assert actions == [KillGroup(100), Spawn()]


def test_a_stop_during_a_limit_restart_wins() -> None:
    slot, _ = step(running_slot(started_at=0.0), over(), 50.0, LIMITED)
    slot, actions = step(slot, StopRequested(), 50.1, LIMITED)
    assert_fields(slot, state=State.STOPPING, occupied=False, pid=100)
    assert actions == []
    slot, actions = step(slot, crashed(100, description="killed by SIGTERM"), 50.2, LIMITED)
    assert_fields(slot, state=State.STOPPED, occupied=False, pid=None, timer_at=None)
    assert actions == [KillGroup(100)]


def test_kill_during_a_limit_restart_wins() -> None:
    slot, _ = step(running_slot(started_at=0.0), over(), 50.0, LIMITED)
    slot, actions = step(slot, KillRequested(), 50.1, LIMITED)
    assert_fields(slot, state=State.STOPPING, occupied=False, pid=100, reason="killed")
    assert actions == [KillGroup(100)]
    slot, _ = step(slot, crashed(100, description="killed by SIGKILL"), 50.2, LIMITED)
    assert_fields(slot, state=State.STOPPED, occupied=False)


def test_limit_right_after_start_is_a_crash_first_immediate_then_backoff() -> None:
    """A worker that cannot even start within its limits: like a crash, the first time
    at once, then with the backoff delays, not in a tight loop."""
    slot = running_slot(started_at=10.0)
    slot, actions = step(slot, over(), 12.9, LIMITED)  # ran 2.9 s < limit_grace 3 s
    assert_fields(slot, state=State.STOPPING, occupied=True, last_limit=MEMORY)
    assert actions == [SignalGroup(100, 15)]
    slot, actions = step(slot, crashed(100, description="killed by SIGTERM"), 13.0, LIMITED)
    assert_fields(slot, state=State.STARTING, pid=None, restarts=1, streak=1, last_limit=MEMORY)
    assert actions == [KillGroup(100), Spawn()]

    slot = run_to_running(slot, 101, 13.0, LIMITED)
    slot, _ = step(slot, over(101), 14.5, LIMITED)
    slot, actions = step(slot, crashed(101, description="killed by SIGTERM"), 14.6, LIMITED)
    assert_fields(slot, state=State.BACKOFF, pid=None, timer_at=15.6, restarts=2, streak=2, last_limit=MEMORY)
    assert slot.reason is not None and MEMORY in slot.reason and "restarting in 1.0s" in slot.reason
    assert actions == [KillGroup(101)]

    slot, actions = step(slot, TimerExpired(), 15.6, LIMITED)
    assert slot.state is State.STARTING and actions == [Spawn()]
    slot, _ = step(slot, Spawned(102), 15.6, LIMITED)
    slot, _ = step(slot, over(102), 15.8, LIMITED)  # while still starting
    slot, _ = step(slot, crashed(102, description="killed by SIGTERM"), 15.9, LIMITED)
    assert_fields(slot, state=State.BACKOFF, timer_at=15.9 + 2.0, restarts=3, streak=3)


def test_limit_right_after_start_following_a_recent_crash_backs_off_at_once() -> None:
    slot, _ = step(running_slot(started_at=10.0, streak=1, restarts=1), over(), 11.5, LIMITED)
    slot, actions = step(slot, crashed(100), 11.6, LIMITED)
    assert_fields(slot, state=State.BACKOFF, timer_at=12.6, streak=2, restarts=2)
    assert actions == [KillGroup(100)]


def test_after_a_limit_crash_the_next_limit_after_a_good_run_is_immediate() -> None:
    """forced_crash belongs to one process: the next process that runs long enough is
    restarted at once for its limit."""
    slot, _ = step(running_slot(started_at=10.0), over(), 11.0, LIMITED)
    slot, _ = step(slot, crashed(100), 11.1, LIMITED)
    assert slot.forced_crash is False and slot.state is State.STARTING
    slot = run_to_running(slot, 101, 11.1, LIMITED)
    slot, _ = step(slot, over(101), 60.0, LIMITED)
    slot, actions = step(slot, crashed(101), 60.1, LIMITED)
    assert_fields(slot, state=State.STARTING, restarts=2, streak=1)
    assert actions == [KillGroup(101), Spawn()]


# -- a limit stop follows the restart policy ---------------------------------------------------------

NEVER = replace(LIMITED, restart=RestartPolicy.NEVER)
ON_FAILURE = replace(LIMITED, restart=RestartPolicy.ON_FAILURE)


def test_stopping_to_exited_on_exited_after_a_limit_when_restart_is_never() -> None:
    slot, _ = step(running_slot(started_at=0.0, restarts=2), over(), 50.0, NEVER)
    slot, actions = step(slot, crashed(100, description="killed by SIGTERM"), 50.5, NEVER)
    assert_fields(
        slot,
        state=State.EXITED,
        occupied=True,
        pid=None,
        timer_at=None,
        restarts=2,
        reason=MEMORY,
        last_limit=MEMORY,
        last_exit=MEMORY,
    )
    assert actions == [KillGroup(100)]


def test_stopping_to_exited_after_a_limit_and_the_stop_timeout_kill_when_restart_is_never() -> None:
    slot, _ = step(running_slot(started_at=0.0), over(), 50.0, NEVER)
    slot, _ = step(slot, TimerExpired(), 80.0, NEVER)
    slot, actions = step(slot, crashed(100, description="killed by SIGKILL"), 80.01, NEVER)
    assert_fields(slot, state=State.EXITED, occupied=True, reason=MEMORY,
                  last_exit=f"{MEMORY}; {OVERDUE}: killed by SIGKILL")
    assert actions == [KillGroup(100)]


def test_stopping_to_exited_after_a_limit_right_after_start_when_restart_is_never() -> None:
    slot, _ = step(running_slot(started_at=10.0), over(), 11.0, NEVER)  # within limit_grace
    slot, actions = step(slot, crashed(100), 11.1, NEVER)
    assert_fields(slot, state=State.EXITED, occupied=True, timer_at=None, restarts=0, reason=MEMORY)
    assert actions == [KillGroup(100)]


def test_stopping_to_starting_after_a_limit_when_restart_is_on_failure() -> None:
    """A limit stop is a failure, even when the worker exits 0 at its stop_signal."""
    slot, _ = step(running_slot(started_at=0.0), over(), 50.0, ON_FAILURE)
    slot, actions = step(slot, crashed(100, success=True, description="exit status 0"), 50.5, ON_FAILURE)
    assert_fields(slot, state=State.STARTING, occupied=True, restarts=1, streak=0, last_limit=MEMORY)
    assert actions == [KillGroup(100), Spawn()]


def test_stopping_to_backoff_after_a_limit_right_after_start_when_restart_is_on_failure() -> None:
    slot, _ = step(running_slot(started_at=10.0, streak=1, restarts=1), over(), 11.0, ON_FAILURE)
    slot, actions = step(slot, crashed(100, success=True, description="exit status 0"), 11.1, ON_FAILURE)
    assert_fields(slot, state=State.BACKOFF, timer_at=12.1, streak=2, restarts=2)
    assert actions == [KillGroup(100)]


@pytest.mark.parametrize("stop", [StopRequested(), KillRequested()], ids=["stop", "kill"])
def test_a_stop_and_start_during_a_limit_stop_restarts_even_when_restart_is_never(stop: Event) -> None:
    """The stop is then the caller's (a scale-down, `workerctl restart`), not the limit's:
    the start asked for afterwards is honoured."""
    slot, _ = step(running_slot(started_at=0.0), over(), 50.0, NEVER)
    slot, _ = step(slot, stop, 50.1, NEVER)
    slot, _ = step(slot, StartRequested(), 50.2, NEVER)
    slot, actions = step(slot, crashed(100, description="killed by SIGTERM"), 50.3, NEVER)
    assert_fields(slot, state=State.STARTING, occupied=True, restarts=1)
    assert actions == [KillGroup(100), Spawn()]


LIMIT_EVENTS: st.SearchStrategy[Event] = st.one_of(
    EVENTS,
    st.builds(LimitExceeded, PIDS, st.just(MEMORY)),
)
LIMIT_POLICIES = st.builds(
    policy_with,
    restart=st.sampled_from(list(RestartPolicy)),
    start_seconds=st.sampled_from([0.0, 1.0]),
    max_restarts=st.integers(0, 3),
    sample_interval=st.sampled_from([0.0, 1.0]),
)
LIMIT_HISTORY = st.lists(st.tuples(LIMIT_EVENTS, st.floats(0.0, 700.0)), max_size=40)


@settings(deadline=None)
@given(LIMIT_POLICIES, LIMIT_HISTORY)
def test_slot_facts_stay_consistent_with_limits(policy: Policy, history: list[tuple[Event, float]]) -> None:
    for old, new, actions, _ in replay(policy, history):
        if new.state in AT_REST or new.state is State.BACKOFF:
            assert new.pid is None
        if new.state in AT_REST:
            assert new.timer_at is None
        if new.state is State.BACKOFF:
            assert new.timer_at is not None
        if new.state in (State.RUNNING, State.STOPPING):
            assert new.pid is not None
        if new.occupied:
            assert new.state is not State.STOPPED
        for action in actions:
            if not isinstance(action, Spawn):
                assert action.pgid in (old.pid, new.pid)
        if new.last_limit != old.last_limit:
            # last_limit only changes on a limit, and then the slot is stopping with a signal
            assert new.state is State.STOPPING and new.occupied
            assert len(actions) == 1 and isinstance(actions[0], SignalGroup)
