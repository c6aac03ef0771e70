"""The console's history ring: one point a second at most, bounded whatever the uptime."""

from __future__ import annotations

import itertools

from workerd.core.history import MARKS, POINTS, History, Mark, Point


def test_points_come_back_oldest_first_and_since_filters() -> None:
    history = History()
    for second in range(5):
        history.record(Point(100.0 + second, second * 10, second, second))
    assert [p.depth for p in history.points()] == [0, 10, 20, 30, 40]
    assert [p.at for p in history.points(since=103.0)] == [103.0, 104.0]


def test_a_reading_in_the_same_second_replaces_the_newest_point() -> None:
    history = History()
    history.record(Point(50.1, 3, 1, 0))
    history.record(Point(50.9, 7, 1, 1))
    history.record(Point(51.0, 9, 1, 1))
    assert history.points() == [Point(50.9, 7, 1, 1), Point(51.0, 9, 1, 1)]


def test_newest_is_the_last_point_recorded_even_after_the_ring_wrapped() -> None:
    history = History(points=2)
    assert history.newest() is None
    for at in (1.0, 2.0, 3.0):
        history.record(Point(at, int(at), 1, 1))
    assert history.newest() == Point(3.0, 3, 1, 1)


def test_a_program_without_a_depth_keeps_none() -> None:
    history = History()
    history.record(Point(1.0, None, 2, 2))
    assert history.points() == [Point(1.0, None, 2, 2)]


def test_the_ring_stays_within_its_bound_after_ten_thousand_readings() -> None:
    history = History()
    for second in range(10_000):
        history.record(Point(float(second), second, 1, 1))
    points = history.points()
    assert len(history) == len(points) == POINTS
    assert (points[0].at, points[-1].at) == (10_000.0 - POINTS, 9_999.0)
    assert all(b.at - a.at == 1.0 for a, b in itertools.pairwise(points))
    for second in range(10_000):
        history.mark(Mark(float(second), "restart", f"w[0]: crash {second}"))
    marks = history.marks()
    assert len(marks) == MARKS and marks[-1].text == "w[0]: crash 9999"


def test_a_small_ring_wraps_and_replaces_in_place() -> None:
    history = History(points=3)
    for at in (1.0, 2.0, 3.0, 4.0, 4.5):
        history.record(Point(at, int(at * 10), 0, 0))
    assert [(p.at, p.depth) for p in history.points()] == [(2.0, 20), (3.0, 30), (4.5, 45)]
