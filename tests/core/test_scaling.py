"""`core.scaling`: from a queue reading to a wanted process count.

Pure: readings are made by hand and the clock (`now`, seconds) is moved by hand;
nothing sleeps, nothing reads a queue. The properties at the end replay random
histories of readings, errors and gates against a small model of the contract:
desired stays in [min, max], equals the highest want of the last
scale_down_delay seconds when nothing gates it (a failed reading "wants" the count
it holds), and an error never moves it.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workerd.core.scaling import (
    Decision,
    Headroom,
    QueueReading,
    ScalePolicy,
    ScaleState,
    initial,
    on_error,
    on_reading,
    wanted_by,
)

MEMORY = "memory available 100 MiB < reserve_memory 256 MiB"


def policy(minimum: int = 1, maximum: int = 8, per_worker: int = 10, delay: float = 60.0,
           max_age: float | None = None) -> ScalePolicy:
    return ScalePolicy(minimum, maximum, per_worker, delay, max_age)


def feed(p: ScalePolicy, state: ScaleState, now: float, depth: int, *, age: float | None = None,
         running: int | None = None, gate: str | None = None) -> tuple[ScaleState, Decision | None]:
    """One good reading at `now`; `running` defaults to the current desired count."""
    running = state.desired if running is None else running
    state, decision, _ = on_reading(p, state, QueueReading(depth, age), running, gate, now)
    return state, decision


# -- desired = ceil(depth / per_worker), clamped to [min, max] ----------------------------


@pytest.mark.parametrize(("depth", "per_worker", "minimum", "maximum", "want"), [
    (0, 10, 1, 8, 1),       # empty: the minimum
    (1, 10, 1, 8, 1),
    (10, 10, 1, 8, 1),
    (11, 10, 1, 8, 2),      # ceil, not floor
    (25, 10, 1, 8, 3),
    (80, 10, 1, 8, 8),
    (81, 10, 1, 8, 8),      # clamped to max
    (10_000, 10, 1, 8, 8),
    (5, 10, 3, 8, 3),       # clamped to min
    (0, 10, 0, 8, 0),       # min = 0 and nothing to do: none
    (1, 10, 0, 8, 1),       # min = 0: one as soon as depth > 0
    (1, 1000, 0, 8, 1),
    (7, 1, 0, 5, 5),
    (3, 1, 2, 2, 2),        # min = max: always that
])
def test_wanted_by_is_ceil_of_depth_per_worker_clamped(depth: int, per_worker: int, minimum: int,
                                                       maximum: int, want: int) -> None:
    count, _ = wanted_by(policy(minimum, maximum, per_worker), QueueReading(depth), running=0)
    assert count == want
    if minimum <= math.ceil(depth / per_worker) <= maximum:
        assert count == math.ceil(depth / per_worker)


def test_wanted_by_says_why() -> None:
    count, why = wanted_by(policy(per_worker=10), QueueReading(25), running=0)
    assert count == 3
    assert why == "depth 25 / per_worker 10"


def test_wanted_by_says_when_it_clamped() -> None:
    _, high = wanted_by(policy(1, 8, 10), QueueReading(1000), running=0)
    assert high == "depth 1000 / per_worker 10, clamped to [1, 8]"
    _, low = wanted_by(policy(2, 8, 10), QueueReading(0), running=0)
    assert low == "depth 0 / per_worker 10, clamped to [2, 8]"


def test_initial_state_is_the_minimum_with_nothing_known() -> None:
    state = initial(policy(minimum=3))
    assert state.desired == 3
    assert (state.window, state.last_reading, state.last_decision) == ((), None, None)
    assert (state.held, state.error, state.error_since) == (None, None, None)


# -- up at once ------------------------------------------------------------------------------


def test_scale_up_is_immediate_with_from_to_why() -> None:
    p = policy(1, 8, 10)
    state, decision = feed(p, initial(p), 100.0, depth=50)
    assert state.desired == 5
    assert decision == Decision(1, 5, "depth 50 / per_worker 10")
    assert state.last_decision == decision
    assert state.last_reading == QueueReading(50)


def test_min_zero_wakes_from_zero_on_the_first_job() -> None:
    p = policy(0, 4, 100)
    state, decision = feed(p, initial(p), 0.0, depth=0)
    assert (state.desired, decision) == (0, None)
    state, decision = feed(p, state, 1.0, depth=1)
    assert state.desired == 1
    assert decision is not None and (decision.before, decision.after) == (0, 1)


def test_a_reading_that_changes_nothing_makes_no_decision() -> None:
    p = policy(1, 8, 10)
    state, _ = feed(p, initial(p), 0.0, depth=30)
    before = state.last_decision
    state, decision = feed(p, state, 1.0, depth=29)
    assert decision is None
    assert state.desired == 3
    assert state.last_decision == before  # the last decision is kept for status


def test_a_further_rise_inside_the_window_scales_up_again_at_once() -> None:
    p = policy(1, 8, 10, delay=60)
    state, _ = feed(p, initial(p), 0.0, depth=30)
    state, decision = feed(p, state, 1.0, depth=70)
    assert state.desired == 7
    assert decision is not None and (decision.before, decision.after) == (3, 7)


# -- down only after scale_down_delay, to the highest desired in the window ---------------------


def test_scale_down_waits_for_the_delay() -> None:
    p = policy(1, 8, 10, delay=60)
    state, _ = feed(p, initial(p), 0.0, depth=50)
    assert state.desired == 5
    for now in (1.0, 10.0, 30.0, 59.0, 59.9):
        state, decision = feed(p, state, now, depth=0)
        assert (state.desired, decision) == (5, None), now
    state, decision = feed(p, state, 60.5, depth=0)
    assert state.desired == 1
    assert decision is not None and (decision.before, decision.after) == (5, 1)
    assert decision.why == "depth 0 / per_worker 10, clamped to [1, 8]; highest in the last 60s: 1"


def test_scale_down_goes_to_the_highest_desired_still_in_the_window() -> None:
    p = policy(1, 8, 10, delay=60)
    state, _ = feed(p, initial(p), 0.0, depth=50)     # wants 5
    state, _ = feed(p, state, 30.0, depth=30)         # wants 3 (held at 5)
    state, _ = feed(p, state, 45.0, depth=0)          # wants 1
    assert state.desired == 5
    state, decision = feed(p, state, 61.0, depth=0)   # 5 left the window; 3 (t=30) is still in it
    assert state.desired == 3
    assert decision is not None and (decision.before, decision.after) == (5, 3)
    assert decision.why.endswith("highest in the last 60s: 3")
    state, decision = feed(p, state, 89.0, depth=0)
    assert (state.desired, decision) == (3, None)
    state, decision = feed(p, state, 91.0, depth=0)
    assert state.desired == 1
    assert decision is not None and (decision.before, decision.after) == (3, 1)


def test_a_new_peak_restarts_the_wait() -> None:
    p = policy(1, 8, 10, delay=60)
    state, _ = feed(p, initial(p), 0.0, depth=50)     # 5
    state, _ = feed(p, state, 50.0, depth=0)
    state, _ = feed(p, state, 55.0, depth=80)         # 8 at once
    assert state.desired == 8
    state, decision = feed(p, state, 100.0, depth=0)
    assert (state.desired, decision) == (8, None)     # 55 is still within 60 s
    state, decision = feed(p, state, 115.5, depth=0)
    assert state.desired == 1 and decision is not None


def test_zero_delay_scales_down_at_the_next_reading() -> None:
    p = policy(1, 8, 10, delay=0)
    state, _ = feed(p, initial(p), 0.0, depth=50)
    state, decision = feed(p, state, 2.0, depth=10)
    assert state.desired == 1
    assert decision is not None and (decision.before, decision.after) == (5, 1)


def test_the_window_is_pruned_as_the_clock_moves() -> None:
    p = policy(1, 8, 10, delay=10)
    state = initial(p)
    for i in range(1000):
        state, _ = feed(p, state, float(i), depth=(i * 7) % 90)
        assert len(state.window) <= 11, i
        assert all(at > i - 10 for at, _ in state.window), i
    assert state.window[-1] == (999.0, math.ceil(((999 * 7) % 90) / 10) or 1)


def test_min_is_kept_when_the_queue_is_empty() -> None:
    p = policy(2, 8, 10, delay=5)
    state = initial(p)
    for now in range(0, 100, 3):
        state, _ = feed(p, state, float(now), depth=0)
        assert state.desired == 2


def test_max_is_never_exceeded() -> None:
    p = policy(1, 3, 1, delay=5)
    state, decision = feed(p, initial(p), 0.0, depth=1000)
    assert state.desired == 3
    assert decision is not None and "clamped to [1, 3]" in decision.why


# -- source errors: hold the count, remember since when ------------------------------------------


def fail(p: ScalePolicy, state: ScaleState, now: float, error: str = "refused") -> ScaleState:
    """One failed reading at `now`."""
    state, _ = on_error(p, state, error, now)
    return state


def test_an_error_holds_the_count_and_records_when_it_started() -> None:
    p = policy(1, 8, 10, delay=10)
    state, _ = feed(p, initial(p), 0.0, depth=50)
    errored, started = on_error(p, state, "redis: connection refused", 5.0)
    assert started
    assert errored.desired == 5
    assert (errored.error, errored.error_since) == ("redis: connection refused", 5.0)
    assert errored.last_reading == state.last_reading
    assert errored.last_decision == state.last_decision


def test_a_failed_reading_counts_in_the_window_as_holding_the_current_count() -> None:
    p = policy(1, 8, 10, delay=10)
    state, _ = feed(p, initial(p), 0.0, depth=50)       # wants 5
    state, _ = feed(p, state, 1.0, depth=0)             # wants 1, held at 5
    errored = fail(p, state, 2.0)
    assert errored.window == ((0.0, 5), (1.0, 1), (2.0, 5))


def test_continuing_errors_keep_the_first_error_time_and_the_latest_message() -> None:
    p = policy(1, 8, 10, delay=10)
    state, _ = feed(p, initial(p), 0.0, depth=50)
    state = fail(p, state, 5.0, "refused")
    state, started = on_error(p, state, "timed out", 7.0)
    assert not started                                  # the outage started at 5.0
    state = fail(p, state, 500.0, "refused again")
    assert state.error == "refused again"
    assert state.error_since == 5.0
    assert state.desired == 5  # far past scale_down_delay: a broken source never scales down


def test_a_long_outage_keeps_the_window_bounded() -> None:
    p = policy(1, 8, 10, delay=10)
    state, _ = feed(p, initial(p), 0.0, depth=50)
    for now in range(1, 1000):
        state = fail(p, state, float(now))
        assert len(state.window) <= 10, now
    assert state.window[0] == (990.0, 5)


def test_a_good_reading_clears_the_error_and_a_later_error_starts_anew() -> None:
    p = policy(1, 8, 10, delay=10)
    state, _ = feed(p, initial(p), 0.0, depth=50)
    state = fail(p, state, 5.0)
    state, _ = feed(p, state, 6.0, depth=50)
    assert (state.error, state.error_since) == (None, None)
    state, started = on_error(p, state, "refused", 20.0)
    assert started
    assert state.error_since == 20.0


def test_the_reading_that_ends_an_outage_says_how_long_the_source_failed() -> None:
    p = policy(1, 8, 10, delay=10)
    state, _ = feed(p, initial(p), 0.0, depth=30)
    state, _, recovered_after = on_reading(p, state, QueueReading(30), 3, None, 1.0)
    assert recovered_after is None                      # no outage, nothing to say
    state = fail(p, state, 2.0)
    state = fail(p, state, 12.0)
    state, _, recovered_after = on_reading(p, state, QueueReading(30), 3, None, 22.3)
    assert recovered_after == pytest.approx(20.3)
    state, _, recovered_after = on_reading(p, state, QueueReading(30), 3, None, 23.0)
    assert recovered_after is None                      # said once


def test_after_an_outage_the_count_comes_down_only_after_a_full_delay_of_good_readings() -> None:
    """The reported case: scaled to 3, a 20 s outage, the source answers 0 again.

    A failed reading holds the count in the window like a reading that wanted it, so
    the last failed reading anchors the wait just as a peak reading does: the count
    comes down scale_down_delay after it, never at the first good reading.
    """
    p = policy(0, 8, 10, delay=10)
    state, _ = feed(p, initial(p), 0.0, depth=30)       # 3
    for now in range(1, 21):                            # 20 s of failed readings, past the delay
        state = fail(p, state, float(now))
    for now in (21.0, 25.0, 29.9):
        state, decision = feed(p, state, now, depth=0)
        assert (state.desired, decision) == (3, None), now
    state, decision = feed(p, state, 30.0, depth=0)     # 10 s after the last failed reading
    assert state.desired == 0
    assert decision is not None and (decision.before, decision.after) == (3, 0)


def test_an_error_before_any_reading_keeps_the_minimum() -> None:
    p = policy(minimum=2)
    state = fail(p, initial(p), 0.0, "no such file")
    assert state.desired == 2
    assert state.error == "no such file"


# -- the gate: memory short or box loaded ---------------------------------------------------------


def test_the_gate_blocks_scale_up_and_says_why() -> None:
    p = policy(1, 8, 10)
    state, _ = feed(p, initial(p), 0.0, depth=20)       # 2
    state, decision = feed(p, state, 1.0, depth=60, gate=MEMORY)
    assert state.desired == 2
    assert decision is None
    assert state.held == f"holding at 2 (queue wants 6): {MEMORY}"


def test_the_gate_never_blocks_reaching_the_minimum() -> None:
    p = policy(3, 8, 10)
    below_min = ScaleState(desired=0)                   # e.g. a state from before min was raised
    state, decision = feed(p, below_min, 0.0, depth=100, gate="load 3.00 per core > max_load 0.9")
    assert state.desired == 3
    assert decision is not None and (decision.before, decision.after) == (0, 3)
    assert state.held == "holding at 3 (queue wants 8): load 3.00 per core > max_load 0.9"


def test_the_gate_keeps_min_with_an_empty_queue() -> None:
    p = policy(2, 8, 10)
    state, decision = feed(p, initial(p), 0.0, depth=0, gate=MEMORY)
    assert (state.desired, decision, state.held) == (2, None, None)


def test_the_gate_holds_a_program_at_zero_when_min_is_zero() -> None:
    p = policy(0, 8, 10)
    state, decision = feed(p, initial(p), 0.0, depth=5, gate=MEMORY)
    assert (state.desired, decision) == (0, None)
    assert state.held == f"holding at 0 (queue wants 1): {MEMORY}"


def test_the_gate_never_forces_a_scale_down() -> None:
    p = policy(1, 8, 10, delay=60)
    state, _ = feed(p, initial(p), 0.0, depth=50)       # 5
    state, decision = feed(p, state, 10.0, depth=0, gate=MEMORY)
    assert (state.desired, decision) == (5, None)      # still within the delay
    state, decision = feed(p, state, 10.5, depth=500, gate=MEMORY)
    assert state.desired == 5                           # held where it is, not lowered
    state, decision = feed(p, state, 100.0, depth=0, gate=MEMORY)
    assert state.desired == 1                           # the normal scale-down still happens
    assert decision is not None and (decision.before, decision.after) == (5, 1)


def test_when_the_gate_lifts_the_count_catches_up_at_once() -> None:
    p = policy(1, 8, 10)
    state, _ = feed(p, initial(p), 0.0, depth=60, gate=MEMORY)
    assert state.desired == 1 and state.held is not None
    state, decision = feed(p, state, 1.0, depth=60)
    assert state.desired == 6
    assert state.held is None
    assert decision is not None and (decision.before, decision.after) == (1, 6)


def test_a_gate_that_holds_nothing_back_leaves_held_empty() -> None:
    p = policy(1, 8, 10)
    state, _ = feed(p, initial(p), 0.0, depth=40)
    state, decision = feed(p, state, 1.0, depth=40, gate=MEMORY)
    assert (state.desired, decision, state.held) == (4, None, None)


# -- max_age: latency ------------------------------------------------------------------------------


def test_an_old_job_wants_one_more_than_running() -> None:
    p = policy(1, 8, 100, max_age=30)
    count, why = wanted_by(p, QueueReading(5, age=45.0), running=3)
    assert count == 4
    assert why == "oldest job 45.0s > max_age 30s"


def test_an_old_job_adds_a_process_each_reading_until_max() -> None:
    p = policy(1, 4, 100, delay=60, max_age=30)
    state = initial(p)
    seen = []
    for now in range(6):
        state, _ = feed(p, state, float(now), depth=5, age=40.0 + now, running=state.desired)
        seen.append(state.desired)
    assert seen == [2, 3, 4, 4, 4, 4]
    assert state.last_decision is not None and "max_age" in state.last_decision.why


def test_max_age_is_clamped_to_max() -> None:
    p = policy(1, 8, 100, max_age=30)
    count, why = wanted_by(p, QueueReading(5, age=45.0), running=8)
    assert count == 8
    assert "clamped to [1, 8]" in why


@pytest.mark.parametrize("age", [None, 0.0, 29.9, 30.0])
def test_a_young_or_unknown_age_changes_nothing(age: float | None) -> None:
    p = policy(1, 8, 10, max_age=30)
    assert wanted_by(p, QueueReading(25, age=age), running=5) == (3, "depth 25 / per_worker 10")


def test_without_max_age_the_age_is_ignored() -> None:
    p = policy(1, 8, 10)
    assert wanted_by(p, QueueReading(25, age=10_000.0), running=5)[0] == 3


def test_depth_wins_when_it_wants_more_than_max_age() -> None:
    p = policy(1, 8, 10, max_age=30)
    count, why = wanted_by(p, QueueReading(70, age=45.0), running=2)
    assert count == 7
    assert why.startswith("depth 70")


# -- properties ------------------------------------------------------------------------------------

policies = st.builds(
    lambda minimum, extra, per_worker, delay, max_age: ScalePolicy(
        minimum, max(minimum, 1) + extra, per_worker, delay, max_age),
    st.integers(0, 5), st.integers(0, 10), st.integers(1, 50),
    st.sampled_from([0.0, 0.5, 1.0, 5.0, 60.0]),
    st.one_of(st.none(), st.floats(0, 100)),
)

readings = st.tuples(
    st.just("reading"),
    st.integers(0, 2000),                                  # depth
    st.one_of(st.none(), st.floats(0, 500)),               # age
    st.integers(0, 20),                                    # running
    st.one_of(st.none(), st.just(MEMORY)),                 # gate
)
errors = st.tuples(st.just("error"), st.text(min_size=1, max_size=10))
steps = st.lists(st.tuples(st.floats(0, 30), st.one_of(readings, readings, errors)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(policies, steps)
def test_replayed_histories_follow_the_contract(p: ScalePolicy, history: list) -> None:
    state = initial(p)
    now = 0.0
    # The model's window: every good reading's want and every failed reading's held count.
    window: list[tuple[float, int]] = []
    failures: list[tuple[float, int]] = []   # (at, count held) of every failed reading
    error_since: float | None = None
    for dt, step in history:
        now += dt
        before = state
        if step[0] == "error":
            state, started = on_error(p, state, step[1], now)
            assert started == (error_since is None)    # once per outage
            error_since = now if error_since is None else error_since
            window.append((now, before.desired))
            failures.append((now, before.desired))
            # an error never changes the count or the last decision
            assert state.desired == before.desired
            assert state.last_decision == before.last_decision
            assert state.error == step[1]
            assert state.error_since == error_since
        else:
            _, depth, age, running, gate = step
            reading = QueueReading(depth, age)
            want, _ = wanted_by(p, reading, running)
            window.append((now, want))
            state, decision, recovered_after = on_reading(p, state, reading, running, gate, now)
            assert recovered_after == (None if error_since is None else now - error_since)
            error_since = None
            assert (state.error, state.error_since) == (None, None)
            horizon = now - p.scale_down_delay
            target = max([want] + [n for at, n in window[:-1] if at > horizon])
            if gate is None:
                # never below the highest want in the window, never above it either
                assert state.desired == target
                assert state.held is None
            elif target <= before.desired:
                assert state.desired == target    # the gate never blocks (nor forces) a scale-down
                assert state.held is None
            else:
                assert state.desired == min(target, max(before.desired, p.minimum))
                assert (state.held is not None) == (state.desired < target)
            # After an outage, the count held through it stays until scale_down_delay has
            # passed since the last failed reading: a full delay of good readings.
            assert state.desired >= max([n for at, n in failures if at > horizon], default=0)
            if state.desired != before.desired:
                assert decision is not None
                assert (decision.before, decision.after) == (before.desired, state.desired)
                assert decision.why
                assert state.last_decision == decision
            else:
                assert decision is None
        assert p.minimum <= state.desired <= p.maximum
        assert all(at > now - p.scale_down_delay or at == now for at, _ in state.window)


@settings(max_examples=200, deadline=None)
@given(policies, st.integers(0, 10_000), st.one_of(st.none(), st.floats(0, 1000)), st.integers(0, 50))
def test_wanted_by_is_always_within_bounds(p: ScalePolicy, depth: int, age: float | None, running: int) -> None:
    count, why = wanted_by(p, QueueReading(depth, age), running)
    assert p.minimum <= count <= p.maximum
    assert why
    if depth > 0:
        assert count >= 1
        assert count >= min(math.ceil(depth / p.per_worker), p.maximum)


# -- events: what the shell hands over, applied in one place -------------------------------


def test_apply_a_depth_reading_decides_with_the_gate_it_carries():
    from workerd.core.scaling import Depth, apply

    p = ScalePolicy(0, 8, 10, 60.0, reserve_memory=256 << 20, max_load=0.9)
    state, outcome = apply(p, initial(p), Depth(QueueReading(30)), running=0, now=0.0)
    assert state.desired == 3 and outcome.decision == Decision(0, 3, "depth 30 / per_worker 10")
    short = Headroom(available_memory=100 << 20, load_per_core=0.1)
    state, outcome = apply(p, state, Depth(QueueReading(80), short), running=3, now=1.0)
    assert state.desired == 3 and outcome.decision is None and MEMORY in (state.held or "")
    loaded = Headroom(available_memory=1 << 30, load_per_core=1.5)
    state, outcome = apply(p, state, Depth(QueueReading(80), loaded), running=3, now=2.0)
    assert state.held == "holding at 3 (queue wants 8): load 1.50 per core > max_load 0.9"
    state, outcome = apply(p, state, Depth(QueueReading(80), Headroom(1 << 30, 0.1)), running=3, now=3.0)
    assert state.desired == 8 and state.held is None


def test_the_gate_is_off_where_the_daemon_turns_it_off():
    from workerd.core.scaling import gate

    assert gate(policy(), Headroom(available_memory=1, load_per_core=99.0)) is None
    assert gate(ScalePolicy(0, 8, 10, 60.0, reserve_memory=256 << 20), Headroom(None, 0.0)) is None


def test_apply_a_failure_holds_and_reports_the_outage_once_and_its_end():
    from workerd.core.scaling import Depth, ReadFailed, apply

    p = policy(minimum=0, delay=10.0)
    state, _ = apply(p, initial(p), Depth(QueueReading(30)), running=0, now=0.0)
    state, first = apply(p, state, ReadFailed("connection refused"), running=3, now=2.0)
    state, second = apply(p, state, ReadFailed("connection refused"), running=3, now=4.0)
    assert (first.outage_started, second.outage_started) == (True, False)
    assert state.desired == 3 and state.error == "connection refused"
    state, back = apply(p, state, Depth(QueueReading(0)), running=3, now=6.0)
    assert back.recovered_after == 4.0 and back.decision is None and state.desired == 3


def test_apply_dead_letters_are_kept_and_never_move_the_count():
    from workerd.core.scaling import DeadLettersRead, apply

    p = policy()
    state, outcome = apply(p, initial(p), DeadLettersRead(7), running=1, now=0.0)
    assert (state.dead_letters, state.dead_letter_error, state.desired) == (7, None, 1)
    assert outcome.decision is None
    state, _ = apply(p, state, DeadLettersRead(None, "no such key type"), running=1, now=1.0)
    assert (state.dead_letters, state.dead_letter_error) == (None, "no such key type")


def test_reconfigured_keeps_the_count_within_the_new_bounds():
    from workerd.core.scaling import reconfigured

    old = ScaleState(desired=5, window=((1.0, 5),))
    assert reconfigured(policy(minimum=0, maximum=3), old, occupied=5) == ScaleState(desired=3, window=((1.0, 5),))
    assert reconfigured(policy(minimum=6, maximum=8), old, occupied=5).desired == 6
    # a program that was not autoscaled keeps what it runs, within the bounds; a new one starts at min
    assert reconfigured(policy(minimum=0, maximum=8), None, occupied=4) == ScaleState(desired=4)
    assert reconfigured(policy(minimum=2, maximum=8), None, occupied=0) == ScaleState(desired=2)
