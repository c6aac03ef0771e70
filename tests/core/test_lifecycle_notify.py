"""The edges a worker's own words drive (`ready = "notify"`, `watchdog`, BUSY, STATUS),
one test per labelled edge of core/lifecycle.py, with a hand-moved clock."""

from __future__ import annotations

from dataclasses import replace

from tests.core.policies import policy_with
from workerd.core.actions import KillGroup, SignalGroup, Spawn
from workerd.core.events import Event, Exited, Notified, Spawned, StartRequested, StopRequested, TimerExpired
from workerd.core.lifecycle import Forced, Policy, Result, Slot, transition
from workerd.core.states import RestartPolicy, State

NOTIFY = policy_with(notify=True, start_timeout=10.0, stop_timeout=5.0)
WATCHED = replace(NOTIFY, watchdog=3.0)


def step(slot: Slot, event: Event, now: float, policy: Policy = NOTIFY) -> Result:
    return transition(slot, event, now, policy, lambda: 0.5)


def spawned(pid: int = 100, now: float = 0.0, policy: Policy = NOTIFY) -> Slot:
    slot, _ = step(Slot(0), StartRequested(), now, policy)
    slot, _ = step(slot, Spawned(pid), now, policy)
    return slot


def ready(pid: int = 100, now: float = 0.0, policy: Policy = WATCHED) -> Slot:
    slot, _ = step(spawned(pid, now, policy), Notified(pid, ready=True), now + 1.0, policy)
    return slot


def test_starting_waits_for_ready_until_start_timeout():
    slot = spawned()
    assert (slot.state, slot.timer_at) == (State.STARTING, 10.0)


def test_starting_to_running_on_ready():
    slot, actions = step(spawned(), Notified(100, ready=True), 2.5)
    assert (slot.state, slot.timer_at, slot.failed_starts, actions) == (State.RUNNING, None, 0, [])


def test_ready_from_an_older_process_or_without_notify_is_ignored():
    slot = spawned()
    assert step(slot, Notified(99, ready=True), 1.0) == (slot, [])
    plain = spawned(policy=policy_with(start_seconds=5.0))
    assert step(plain, Notified(100, ready=True), 1.0, policy_with(start_seconds=5.0))[0].state is State.STARTING


def test_starting_to_stopping_when_start_timeout_passes_then_a_failed_start():
    slot, actions = step(spawned(), TimerExpired(), 10.0)
    assert (slot.state, slot.forced, slot.reason) == (State.STOPPING, Forced.NOT_READY,
                                                      "no READY=1 within start_timeout (10.0s)")
    assert actions == [SignalGroup(100, 15)]
    slot, actions = step(slot, Exited(100, False, "killed by SIGTERM"), 10.2)
    assert (slot.state, slot.failed_starts) == (State.BACKOFF, 1)
    assert actions == [KillGroup(100)]


def test_not_ready_counts_toward_max_restarts():
    policy = replace(NOTIFY, max_restarts=2)
    slot = spawned(policy=policy)
    now = 0.0
    for pid in (100, 101):
        slot, _ = step(slot, TimerExpired(), now + 10.0, policy)
        slot, _ = step(slot, Exited(pid, False, "killed by SIGTERM"), now + 10.1, policy)
        if slot.state is State.BACKOFF:
            assert slot.timer_at is not None
            now = slot.timer_at
            slot, _ = step(slot, TimerExpired(), now, policy)
            slot, _ = step(slot, Spawned(101), now, policy)
    assert slot.state is State.FATAL


def test_running_with_a_watchdog_arms_its_deadline_at_ready():
    slot = ready()
    assert (slot.state, slot.timer_at, slot.pinged) == (State.RUNNING, 4.0, False)


def test_running_to_running_on_watchdog_moves_the_deadline():
    slot, actions = step(ready(), Notified(100, watchdog=True), 3.5, WATCHED)
    assert (slot.state, slot.timer_at, slot.pinged, actions) == (State.RUNNING, 6.5, True, [])


def test_running_to_stopping_on_a_hang_then_restarted_at_once():
    slot, _ = step(ready(), Notified(100, watchdog=True), 3.5, WATCHED)
    slot, actions = step(slot, TimerExpired(), 6.5, WATCHED)
    assert (slot.state, slot.forced, slot.forced_crash) == (State.STOPPING, Forced.WATCHDOG, False)
    assert slot.reason == "watchdog: no WATCHDOG=1 for 3.0s" and actions == [SignalGroup(100, 15)]
    slot, actions = step(slot, Exited(100, False, "killed by SIGTERM"), 7.0, WATCHED)
    assert slot.state is State.STARTING and actions == [KillGroup(100), Spawn()]
    assert slot.restarts == 1 and slot.streak == 0, "a hang after a good run is not a crash"


def test_a_hang_before_the_first_ping_is_a_crash():
    slot, _ = step(ready(), TimerExpired(), 4.0, WATCHED)
    assert slot.forced_crash is True
    slot, _ = step(slot, Exited(100, False, "killed by SIGTERM"), 4.5, WATCHED)
    assert slot.state is State.STARTING and slot.streak == 1  # the first crash restarts at once
    slot, _ = step(slot, Spawned(101), 4.5, WATCHED)
    slot, _ = step(slot, Notified(101, ready=True), 5.0, WATCHED)
    slot, _ = step(slot, TimerExpired(), 8.0, WATCHED)
    slot, _ = step(slot, Exited(101, False, "killed by SIGTERM"), 8.5, WATCHED)
    assert slot.state is State.BACKOFF, "a hang that repeats right after start backs off"


def test_a_hang_with_restart_never_ends_exited_with_the_reason():
    policy = replace(WATCHED, restart=RestartPolicy.NEVER)
    slot, _ = step(ready(policy=policy), TimerExpired(), 4.0, policy)
    slot, _ = step(slot, TimerExpired(), 9.0, policy)  # stop_timeout: SIGKILL, the cause stays
    slot, _ = step(slot, Exited(100, False, "killed by SIGKILL"), 9.1, policy)
    assert (slot.state, slot.reason) == (State.EXITED, "watchdog: no WATCHDOG=1 for 3.0s")
    assert slot.last_exit == "watchdog: no WATCHDOG=1 for 3.0s; still running 5.0s after SIGTERM: killed by SIGKILL"


def test_a_stop_request_during_a_forced_stop_is_the_callers_stop():
    slot, _ = step(ready(), TimerExpired(), 4.0, WATCHED)
    slot, _ = step(slot, StopRequested(), 4.1, WATCHED)
    assert slot.forced is None
    slot, _ = step(slot, Exited(100, False, "killed by SIGTERM"), 4.2, WATCHED)
    assert slot.state is State.STOPPED


def test_busy_idle_status_and_stopping_are_recorded_and_forgotten_with_the_process():
    slot = ready()
    slot, _ = step(slot, Notified(100, busy=True, status="job 17"), 2.0, WATCHED)
    assert (slot.busy_since, slot.status_text) == (2.0, "job 17")
    slot, _ = step(slot, Notified(100, busy=True), 2.5, WATCHED)
    assert slot.busy_since == 2.0, "a second BUSY=1 does not restart the job's clock"
    slot, _ = step(slot, Notified(100, busy=False, stopping=True), 3.0, WATCHED)
    assert (slot.busy_since, slot.draining) == (None, True)
    slot, _ = step(slot, Notified(100, busy=True), 3.1, WATCHED)
    slot, _ = step(slot, Exited(100, False, "exit status 1"), 3.5, WATCHED)
    assert (slot.busy_since, slot.status_text, slot.draining) == (None, None, False)
