"""`core.limits.check`: memory over the limit, CPU sustained over a full window.

Pure: readings are made by hand with a hand-moved clock (seconds), CPU in seconds
used by the tree so far; nothing sleeps and nothing reads /proc.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workerd.core.limits import Exceeded, Reading, Watch, check, needs_pss

MiB = 1024 * 1024


def watch_of(memory: int | None = None, cpu_percent: float | None = None, cpu_window: float = 60.0) -> Watch:
    return Watch(memory, cpu_percent, cpu_window)


def feed(watch: Watch, readings: list[Reading]) -> tuple[tuple[Reading, ...], list[Exceeded | None]]:
    """Hand the readings to check() one by one, as the watcher does; returns the last
    history and every verdict."""
    history: tuple[Reading, ...] = ()
    verdicts: list[Exceeded | None] = []
    for reading in readings:
        history, exceeded = check(watch, history, reading)
        verdicts.append(exceeded)
    return history, verdicts


def busy(percent: float, seconds: int, start: float = 0.0, cpu: float = 0.0, every: float = 1.0) -> list[Reading]:
    """Readings every `every` seconds from `start` of a tree using `percent` of a core."""
    steps = round(seconds / every)
    return [Reading(start + i * every, 10 * MiB, cpu + percent / 100 * i * every) for i in range(steps + 1)]


# -- memory ---------------------------------------------------------------------------


def test_memory_over_the_limit_fires_with_the_reason() -> None:
    watch = watch_of(memory=64 * MiB)
    history, exceeded = check(watch, (), Reading(5.0, 69 * MiB, 1.0))
    assert exceeded == Exceeded("memory", "memory 69 MiB RSS > 64 MiB")
    assert history == ()


def test_memory_one_byte_over_fires() -> None:
    _, exceeded = check(watch_of(memory=512 * MiB), (), Reading(0.0, 512 * MiB + 1, 0.0))
    assert exceeded is not None and exceeded.limit == "memory"
    assert exceeded.reason == "memory 512 MiB RSS > 512 MiB"


@pytest.mark.parametrize("rss", [0, 1, 64 * MiB - 1, 64 * MiB])
def test_memory_at_or_under_the_limit_is_fine(rss: int) -> None:
    history, exceeded = check(watch_of(memory=64 * MiB), (), Reading(5.0, rss, 1.0))
    assert exceeded is None
    assert history == ()  # memory needs no history when cpu_percent is unset


def test_memory_is_judged_on_every_reading_without_a_window() -> None:
    watch = watch_of(memory=64 * MiB, cpu_percent=50, cpu_window=60)
    readings = [Reading(float(t), rss * MiB, 0.0) for t, rss in enumerate([10, 30, 50, 63, 64])]
    history, verdicts = feed(watch, readings)
    assert verdicts == [None] * 5
    _, exceeded = check(watch, history, Reading(5.0, 80 * MiB, 0.0))
    assert exceeded == Exceeded("memory", "memory 80 MiB RSS > 64 MiB")


def test_memory_is_judged_on_pss_when_it_was_read() -> None:
    """A prefork tree: 1 GiB of RSS summed, 300 MiB of pages once counted."""
    _, exceeded = check(watch_of(memory=512 * MiB), (), Reading(0.0, 1024 * MiB, 0.0, pss=300 * MiB))
    assert exceeded is None
    _, exceeded = check(watch_of(memory=512 * MiB), (), Reading(0.0, 1024 * MiB, 0.0, pss=612 * MiB))
    assert exceeded == Exceeded("memory", "memory 612 MiB PSS > 512 MiB")


@pytest.mark.parametrize("rss, needed", [(0, False), (409 * MiB, False), (410 * MiB, True), (2048 * MiB, True)])
def test_pss_is_read_only_past_80_percent_of_the_limit(rss: int, needed: bool) -> None:
    assert needs_pss(watch_of(memory=512 * MiB), rss) is needed
    assert needs_pss(watch_of(cpu_percent=50), rss) is False  # no memory limit: never


def test_no_limits_never_fire() -> None:
    _, verdicts = feed(watch_of(), [Reading(float(t), 10**12, 10.0 * t) for t in range(100)])
    assert verdicts == [None] * 100


# -- CPU ------------------------------------------------------------------------------


def test_cpu_is_not_judged_before_a_full_window() -> None:
    """100% of a core from the start, limit 50% over 10 s: nothing until 10 s have passed."""
    watch = watch_of(cpu_percent=50, cpu_window=10)
    _, verdicts = feed(watch, busy(100, 9))
    assert verdicts == [None] * 10
    _, verdicts = feed(watch, busy(100, 10))
    assert verdicts[:-1] == [None] * 10
    assert verdicts[-1] is not None


def test_sustained_cpu_over_the_window_fires_with_the_reason() -> None:
    watch = watch_of(cpu_percent=50, cpu_window=2)
    history, exceeded = check(watch, (), Reading(0.0, 0, 3.0))
    assert exceeded is None
    history, exceeded = check(watch, history, Reading(1.0, 0, 3.74))
    assert exceeded is None
    history, exceeded = check(watch, history, Reading(2.0, 0, 4.48))
    assert exceeded == Exceeded("cpu_percent", "cpu 74% > 50% over 2s")
    assert history == ()  # judged afresh after a restart


def test_cpu_reason_shows_the_limit_as_given_and_the_real_span() -> None:
    watch = watch_of(cpu_percent=12.5, cpu_window=60)
    history, _ = check(watch, (), Reading(100.0, 0, 0.0))
    _, exceeded = check(watch, history, Reading(175.0, 0, 75.0))  # one late reading: 100% over 75 s
    assert exceeded == Exceeded("cpu_percent", "cpu 100% > 12.5% over 75s")


def test_cpu_exactly_at_the_limit_does_not_fire() -> None:
    _, verdicts = feed(watch_of(cpu_percent=50, cpu_window=4), busy(50, 20))
    assert verdicts == [None] * 21


def test_a_spike_shorter_than_the_window_does_not_fire() -> None:
    """10 s window, 50% limit: idle, a 2 s spike at 200% (two cores flat out), idle
    again. 4 CPU seconds in any 10 s is 40%: no restart."""
    watch = watch_of(cpu_percent=50, cpu_window=10)
    readings, cpu = [], 0.0
    for t in range(40):
        if 12 <= t < 14:
            cpu += 2.0  # two cores, flat out, for one second
        readings.append(Reading(float(t), 0, cpu))
    _, verdicts = feed(watch, readings)
    assert verdicts == [None] * 40


def test_a_spike_as_long_as_needed_fires() -> None:
    """The same spike held for 3 s: 6 CPU seconds in a 10 s window is 60% > 50%."""
    watch = watch_of(cpu_percent=50, cpu_window=10)
    readings, cpu = [], 0.0
    for t in range(40):
        if 12 <= t < 15:
            cpu += 2.0
        readings.append(Reading(float(t), 0, cpu))
    _, verdicts = feed(watch, readings)
    fired = [i for i, v in enumerate(verdicts) if v is not None]
    assert fired, "6 CPU seconds within 10 s is 60%"
    first = verdicts[fired[0]]
    assert first is not None and first.limit == "cpu_percent"
    assert first.reason == "cpu 60% > 50% over 10s"


def test_cpu_under_the_limit_keeps_being_watched() -> None:
    """Long after the first window, a tree that starts spinning is still caught."""
    watch = watch_of(cpu_percent=50, cpu_window=5)
    idle = busy(10, 100)
    history, verdicts = feed(watch, idle)
    assert verdicts == [None] * 101
    spinning = busy(100, 10, start=101.0, cpu=idle[-1].cpu + 0.1)
    verdicts = []
    for reading in spinning:
        history, exceeded = check(watch, history, reading)
        verdicts.append(exceeded)
    assert any(v is not None and v.limit == "cpu_percent" for v in verdicts)


def test_negative_cpu_deltas_do_not_fire() -> None:
    """A child reaped by someone outside the tree takes its CPU seconds away: the sum
    goes down. That is 0%, never a negative or wrapped-around percentage."""
    watch = watch_of(cpu_percent=50, cpu_window=2)
    readings = [Reading(float(t), 0, cpu) for t, cpu in enumerate([100.0, 60.0, 20.0, 10.0, 5.0, 5.0])]
    _, verdicts = feed(watch, readings)
    assert verdicts == [None] * 6


def test_memory_fires_before_cpu_and_resets_the_history() -> None:
    watch = watch_of(memory=64 * MiB, cpu_percent=50, cpu_window=2)
    history, _ = feed(watch, busy(100, 1))
    assert history
    history, exceeded = check(watch, history, Reading(2.0, 65 * MiB, 2.0))
    assert exceeded is not None and exceeded.limit == "memory"
    assert history == ()


# -- the history that is kept -----------------------------------------------------------


def test_history_is_the_shortest_suffix_covering_the_window() -> None:
    watch = watch_of(cpu_percent=90, cpu_window=3)
    history, _ = feed(watch, busy(10, 10))
    # Readings at 0..10: the baseline of the window ending at 10 is the reading at 7.
    assert [r.at for r in history] == [7.0, 8.0, 9.0, 10.0]


def test_history_with_a_late_reading_keeps_the_last_one_before_the_window() -> None:
    watch = watch_of(cpu_percent=90, cpu_window=3)
    readings = [Reading(t, 0, 0.0) for t in (0.0, 1.0, 2.0, 2.5, 8.0)]
    history, _ = feed(watch, readings)
    # 2.5 is the latest reading at least 3 s before 8.0.
    assert [r.at for r in history] == [2.5, 8.0]


GAPS = st.lists(st.floats(0.1, 5.0), min_size=1, max_size=300)
CPU_STEPS = st.lists(st.floats(-1.0, 4.0), min_size=300, max_size=300)


@settings(deadline=None, max_examples=200)
@given(
    window=st.floats(1.0, 30.0),
    limit=st.floats(1.0, 200.0),
    gaps=GAPS,
    cpu_steps=CPU_STEPS,
)
def test_history_stays_bounded_and_the_verdict_is_the_window_average(
    window: float, limit: float, gaps: list[float], cpu_steps: list[float]
) -> None:
    """With readings at least 0.1 s apart, the history never holds more than the readings
    of one window plus its baseline; and each verdict is the one computed from every
    reading since the last fire: baseline = the latest reading at least `window` old."""
    watch = watch_of(cpu_percent=limit, cpu_window=window)
    bound = math.floor(window / 0.1) + 2
    history: tuple[Reading, ...] = ()
    since_fire: list[Reading] = []
    now, cpu = 0.0, 0.0
    for gap, step in zip(gaps, cpu_steps, strict=False):
        now += gap
        cpu = max(cpu + step, 0.0)
        reading = Reading(now, 0, cpu)
        since_fire.append(reading)
        old = history
        history, exceeded = check(watch, history, reading)

        olds = [r for r in since_fire[:-1] if now - r.at >= window]
        expected = None
        if olds:
            base = olds[-1]
            percent = 100.0 * max(cpu - base.cpu, 0.0) / (now - base.at)
            if percent > limit:
                expected = "cpu_percent"
        assert (exceeded.limit if exceeded else None) == expected

        if exceeded is not None:
            assert history == ()
            since_fire = []
            continue
        assert len(history) <= bound
        assert history[-1] == reading
        assert history == (*old, reading)[-len(history):], "a suffix of what was handed in"
        if len(history) > 2:
            assert now - history[1].at < window, "not the shortest suffix that covers the window"
