"""The handover from an old config's processes to the new ones: pure counts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from workerd.core.handover import Outgoing, keep_counts


def test_old_processes_are_all_kept_while_no_new_one_runs():
    assert keep_counts(3, 0, [Outgoing(keep=3, running=3)]) == [3]


def test_each_new_process_running_releases_one_old_one():
    assert keep_counts(3, 1, [Outgoing(keep=3, running=3)]) == [2]
    assert keep_counts(3, 3, [Outgoing(keep=2, running=2)]) == [0]


def test_a_count_never_rises_again():
    # a new process ran (an old one went), then crashed: the old one is not started anew
    assert keep_counts(3, 0, [Outgoing(keep=2, running=2)]) == [2]


def test_a_stopped_program_keeps_nothing():
    assert keep_counts(0, 0, [Outgoing(keep=3, running=3)]) == [0]


def test_older_generations_cover_what_newer_ones_do_not_run():
    # newest (2 wanted by the config): none running; the middle one runs 1 of the 2 it keeps
    counts = keep_counts(2, 0, [Outgoing(keep=2, running=1), Outgoing(keep=2, running=2)])
    assert counts == [2, 1]


def test_a_scale_down_during_the_handover_shrinks_the_old_generation():
    assert keep_counts(1, 0, [Outgoing(keep=3, running=3)]) == [1]


generations = st.lists(
    st.tuples(st.integers(0, 10), st.integers(0, 10)).map(lambda t: Outgoing(keep=t[0], running=min(t))),
    max_size=4,
)


@given(st.integers(0, 10), st.integers(0, 10), generations)
def test_counts_are_bounded_and_never_overshoot(target, running_new, outgoing):
    counts = keep_counts(target, running_new, outgoing)
    assert len(counts) == len(outgoing)
    for count, generation in zip(counts, outgoing, strict=True):
        assert 0 <= count <= generation.keep
    # what runs, new and kept old, never exceeds the target because of the old ones
    kept_running = sum(min(g.running, c) for g, c in zip(outgoing, counts, strict=True))
    assert running_new + kept_running <= max(target, running_new)
    if running_new >= target:
        assert counts == [0] * len(outgoing)
