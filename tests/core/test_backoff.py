"""Backoff delays: growth, cap, jitter bounds; rand is passed in, so every value is exact."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workerd.core.backoff import Backoff

RAND = st.floats(0.0, 1.0, exclude_max=True)
STEP = st.integers(0, 10_000)


def no_jitter(b: Backoff, step: int) -> float:
    """The un-jittered delay, computed in logs so no power can overflow."""
    if step * math.log(b.factor) >= math.log(b.maximum / b.initial):
        return b.maximum
    return min(b.initial * b.factor**step, b.maximum)


BACKOFFS = st.builds(
    Backoff,
    initial=st.floats(0.001, 1000.0),
    factor=st.floats(1.0, 10.0),
    maximum=st.floats(0.001, 100_000.0),
    jitter=st.floats(0.0, 1.0),
    reset=st.floats(0.0, 86_400.0),
)


def test_delay_grows_by_factor() -> None:
    b = Backoff(initial=0.5, factor=3.0, maximum=1000.0, jitter=0.1, reset=600.0)
    assert [b.delay(k, 0.5) for k in range(5)] == pytest.approx([0.5, 1.5, 4.5, 13.5, 40.5])


def test_delay_is_capped_at_maximum() -> None:
    b = Backoff(initial=1.0, factor=2.0, maximum=300.0, jitter=0.0, reset=600.0)
    assert [b.delay(k, 0.3) for k in (8, 9, 10, 50)] == [256.0, 300.0, 300.0, 300.0]


@pytest.mark.parametrize("factor", [2.0, 10.0, 2])
def test_a_huge_step_does_not_overflow(factor: float) -> None:
    b = Backoff(initial=1.0, factor=factor, maximum=300.0, jitter=0.1, reset=600.0)
    assert b.delay(10_000, 0.5) == 300.0
    assert 270.0 <= b.delay(10_000, 0.0) <= b.delay(10_000, 0.999) < 330.0


def test_jitter_spreads_the_delay_both_ways() -> None:
    b = Backoff(initial=10.0, factor=2.0, maximum=300.0, jitter=0.2, reset=600.0)
    assert b.delay(0, 0.0) == pytest.approx(8.0)
    assert b.delay(0, 0.5) == pytest.approx(10.0)
    assert b.delay(0, 0.999999) == pytest.approx(12.0, abs=1e-4)
    assert b.delay(0, 0.25) < b.delay(0, 0.75)


@given(BACKOFFS, STEP, RAND)
def test_delay_lies_within_the_jitter_band(b: Backoff, step: int, rand: float) -> None:
    base = no_jitter(b, step)
    low, high = base * (1 - b.jitter), base * (1 + b.jitter)
    assert low * (1 - 1e-9) <= b.delay(step, rand) <= high * (1 + 1e-9)


@given(BACKOFFS, STEP, RAND)
def test_delay_never_exceeds_maximum_plus_jitter(b: Backoff, step: int, rand: float) -> None:
    assert b.delay(step, rand) <= b.maximum * (1 + b.jitter) * (1 + 1e-12)


@given(BACKOFFS, st.integers(0, 2000), RAND)
def test_delay_never_shrinks_as_the_streak_grows(b: Backoff, step: int, rand: float) -> None:
    assert b.delay(step, rand) <= b.delay(step + 1, rand)


@given(BACKOFFS, STEP, RAND, st.floats(0.0, 5.0))
def test_delay_is_never_negative(b: Backoff, step: int, rand: float, jitter: float) -> None:
    """Even a misconfigured jitter above 1 gives a delay of 0 rather than a negative one."""
    wild = replace(b, jitter=jitter)
    assert wild.delay(step, rand) >= 0.0
