"""Who gets the stop signal (`kill_mode`), and what a stop leaves in the slot's account.

kill_mode = "mixed" (systemd's KillMode=mixed): the stop signal goes to the main process
alone, so a pool (Celery prefork, Dramatiq) shuts its own children down warmly; once the
main process has exited, what is left of its group gets the stop signal and then SIGKILL
after a short grace; at stop_timeout SIGKILL goes to the whole group. "group": the stop
signal to the whole group. The rest of the tests in tests/core run with "group".
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.core.policies import policy_with
from workerd.core.actions import EndGroup, KillGroup, SignalGroup, SignalMain, Spawn
from workerd.core.events import (
    Event,
    Exited,
    KillRequested,
    LimitExceeded,
    Notified,
    Spawned,
    StartRequested,
    StopRequested,
    TimerExpired,
)
from workerd.core.lifecycle import Policy, Result, Slot, transition
from workerd.core.states import KillMode, RestartPolicy, State

MIXED = policy_with(kill_mode=KillMode.MIXED, start_seconds=0.0)
GROUP = replace(MIXED, kill_mode=KillMode.GROUP)
OVERDUE = "still running 30.0s after SIGTERM"


def step(slot: Slot, event: Event, now: float, policy: Policy = MIXED) -> Result:
    return transition(slot, event, now, policy, lambda: 0.5)


def running(pid: int = 100, policy: Policy = MIXED) -> Slot:
    slot, _ = step(Slot(0), StartRequested(), 0.0, policy)
    slot, _ = step(slot, Spawned(pid), 0.0, policy)
    assert slot.state is State.RUNNING
    return slot


def stopping(policy: Policy = MIXED) -> Slot:
    slot, _ = step(running(policy=policy), StopRequested(), 10.0, policy)
    return slot


# -- the stop signal --------------------------------------------------------------------


def test_mixed_sends_the_stop_signal_to_the_main_process_only():
    slot, actions = step(running(), StopRequested(), 10.0)
    assert (slot.state, slot.timer_at, actions) == (State.STOPPING, 40.0, [SignalMain(100, 15)])


def test_group_sends_the_stop_signal_to_the_whole_group():
    _, actions = step(running(policy=GROUP), StopRequested(), 10.0, GROUP)
    assert actions == [SignalGroup(100, 15)]


def test_mixed_stops_the_daemon_forces_signal_the_main_process_only():
    notify = replace(MIXED, notify=True, start_timeout=5.0, watchdog=2.0)
    slot, _ = step(Slot(0), StartRequested(), 0.0, notify)
    slot, _ = step(slot, Spawned(100), 0.0, notify)
    _, not_ready = step(slot, TimerExpired(), 5.0, notify)
    slot, _ = step(slot, Notified(100, ready=True), 1.0, notify)
    _, hung = step(slot, TimerExpired(), 3.0, notify)
    _, over_limit = step(running(), LimitExceeded(100, "memory 313 MiB > 100 MiB"), 50.0)
    assert not_ready == hung == over_limit == [SignalMain(100, 15)]


def test_mixed_a_stop_that_arrives_while_spawning_signals_the_main_process_only():
    slot, _ = step(Slot(0), StartRequested(), 0.0)
    slot, _ = step(slot, StopRequested(), 0.0)
    slot, actions = step(slot, Spawned(100), 0.1)
    assert (slot.state, actions) == (State.STOPPING, [SignalMain(100, 15)])


# -- after the main process exits -------------------------------------------------------


def test_mixed_what_is_left_of_the_group_gets_the_stop_signal_then_sigkill_after_a_grace():
    slot, actions = step(stopping(), Exited(100, True, "exit status 0"), 12.0)
    assert (slot.state, slot.last_exit) == (State.STOPPED, "exit status 0")
    assert actions == [EndGroup(100, 15, 1.0)]


@pytest.mark.parametrize("stop_timeout, grace", [(0.3, 0.3), (0.0, 0.0), (3600.0, 1.0)])
def test_the_grace_is_a_second_at_most_and_never_past_stop_timeout(stop_timeout, grace):
    policy = replace(MIXED, stop_timeout=stop_timeout)
    _, actions = step(stopping(policy), Exited(100, True, "exit status 0"), 10.1, policy)
    assert actions == [EndGroup(100, 15, grace)]


def test_mixed_a_restart_ends_the_old_group_and_spawns():
    slot = running()
    slot, _ = step(slot, StopRequested(), 10.0)
    slot, _ = step(slot, StartRequested(), 10.0)  # a restart: the slot is wanted again
    slot, actions = step(slot, Exited(100, True, "exit status 0"), 11.0)
    assert slot.state is State.STARTING and actions == [EndGroup(100, 15, 1.0), Spawn()]


def test_group_kills_what_is_left_of_the_group_at_once():
    _, actions = step(stopping(GROUP), Exited(100, True, "exit status 0"), 12.0, GROUP)
    assert actions == [KillGroup(100)]


def test_mixed_a_crash_kills_what_is_left_of_the_group_at_once():
    """Nobody asked for a stop: nothing is shutting down warmly."""
    _, actions = step(running(), Exited(100, False, "exit status 1"), 12.0)
    assert actions == [KillGroup(100), Spawn()]


def test_mixed_after_a_kill_there_is_nothing_to_stop_gently():
    slot, actions = step(stopping(), KillRequested(), 11.0)
    assert actions == [KillGroup(100)]
    _, actions = step(slot, Exited(100, False, "killed by SIGKILL"), 11.1)
    assert actions == [KillGroup(100)]


# -- a stop that runs out of stop_timeout -----------------------------------------------


@pytest.mark.parametrize("policy", [MIXED, GROUP], ids=["mixed", "group"])
def test_a_stop_past_stop_timeout_kills_the_group_and_says_so(policy):
    slot, actions = step(stopping(policy), TimerExpired(), 40.0, policy)
    assert (slot.state, slot.overdue, slot.reason) == (State.STOPPING, OVERDUE, OVERDUE)
    assert actions == [KillGroup(100, overdue=OVERDUE)]
    slot, actions = step(slot, Exited(100, False, "killed by SIGKILL"), 40.01, policy)
    assert actions == [KillGroup(100)]
    assert (slot.state, slot.last_exit) == (State.STOPPED, f"{OVERDUE}: killed by SIGKILL")


def test_the_overdue_text_names_the_stop_signal_and_timeout():
    policy = replace(MIXED, stop_signal=2, stop_signal_name="SIGINT", stop_timeout=5.0)
    _, actions = step(stopping(policy), TimerExpired(), 15.0, policy)
    assert actions == [KillGroup(100, overdue="still running 5.0s after SIGINT")]


def test_the_next_process_starts_with_a_clean_account():
    slot, _ = step(stopping(), StartRequested(), 10.0)
    slot, _ = step(slot, TimerExpired(), 40.0)
    slot, actions = step(slot, Exited(100, False, "killed by SIGKILL"), 40.1)
    assert slot.state is State.STARTING and slot.overdue is None and not slot.killed
    slot, _ = step(slot, Spawned(101), 40.2)
    slot, actions = step(slot, StopRequested(), 50.0)
    slot, actions = step(slot, Exited(101, True, "exit status 0"), 51.0)
    assert actions == [EndGroup(101, 15, 1.0)] and slot.last_exit == "exit status 0"


# -- a forced stop's reason outlives the graceful exit that follows ---------------------


def test_a_limit_restart_keeps_its_reason_as_the_last_exit():
    slot, _ = step(running(), LimitExceeded(100, "memory 313 MiB > 100 MiB"), 50.0)
    slot, _ = step(slot, Exited(100, True, "exit status 0"), 50.5)
    assert (slot.state, slot.last_exit) == (State.STARTING, "memory 313 MiB > 100 MiB")


def test_a_watchdog_restart_keeps_its_reason_as_the_last_exit():
    notify = replace(MIXED, notify=True, watchdog=1.0)
    slot, _ = step(Slot(0), StartRequested(), 0.0, notify)
    slot, _ = step(slot, Spawned(100), 0.0, notify)
    slot, _ = step(slot, Notified(100, ready=True), 0.5, notify)
    slot, _ = step(slot, Notified(100, watchdog=True), 1.0, notify)
    slot, _ = step(slot, TimerExpired(), 2.0, notify)
    slot, _ = step(slot, Exited(100, True, "exit status 0"), 2.5, notify)
    assert (slot.state, slot.last_exit) == (State.STARTING, "watchdog: no WATCHDOG=1 for 1.0s")


def test_a_not_ready_restart_keeps_its_reason_as_the_last_exit():
    notify = replace(MIXED, notify=True, start_timeout=5.0)
    slot, _ = step(Slot(0), StartRequested(), 0.0, notify)
    slot, _ = step(slot, Spawned(100), 0.0, notify)
    slot, _ = step(slot, TimerExpired(), 5.0, notify)
    slot, _ = step(slot, Exited(100, True, "exit status 0"), 5.5, notify)
    assert (slot.state, slot.last_exit) == (State.BACKOFF, "no READY=1 within start_timeout (5.0s)")


def test_a_forced_stop_past_stop_timeout_says_both():
    never = replace(MIXED, restart=RestartPolicy.NEVER)
    slot, _ = step(running(policy=never), LimitExceeded(100, "memory 313 MiB > 100 MiB"), 50.0, never)
    slot, _ = step(slot, TimerExpired(), 80.0, never)
    slot, _ = step(slot, Exited(100, False, "killed by SIGKILL"), 80.1, never)
    assert (slot.state, slot.reason) == (State.EXITED, "memory 313 MiB > 100 MiB")
    assert slot.last_exit == f"memory 313 MiB > 100 MiB; {OVERDUE}: killed by SIGKILL"


def test_a_stop_asked_for_during_a_forced_stop_reports_the_exit_itself():
    slot, _ = step(running(), LimitExceeded(100, "memory 313 MiB > 100 MiB"), 50.0)
    slot, _ = step(slot, StopRequested(), 50.1)
    slot, _ = step(slot, Exited(100, True, "exit status 0"), 50.5)
    assert (slot.state, slot.last_exit) == (State.STOPPED, "exit status 0")
