"""The last hour of a program, for the console's chart and `workerctl history`: queue
depth, desired and running processes over time, and the restarts and limits that marked
it.

Bounded whatever the uptime: at most one point per second (a later reading within the
same second replaces the earlier one) and POINTS of them, in columns of machine numbers
(24 bytes a point: 86 KiB a program for a full hour); and at most MARKS marks. The
oldest go first.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from dataclasses import dataclass

#: One hour at one point a second.
POINTS = 3600
#: Restart and limit marks kept per program.
MARKS = 500


@dataclass(frozen=True)
class Point:
    at: float
    #: None: the program has no queue source, or the reading failed.
    depth: int | None
    desired: int
    running: int


@dataclass(frozen=True)
class Mark:
    at: float
    #: "restart" or "limit".
    kind: str
    #: For the chart's tooltip: "w[2]: crash (exit status 1)".
    text: str


class History:
    def __init__(self, points: int = POINTS, marks: int = MARKS) -> None:
        self._capacity = points
        #: A ring: column i of the next point is at self._next, once full.
        self._at = array("d")
        self._depth = array("q")
        self._desired = array("l")
        self._running = array("l")
        self._next = 0
        self._marks: deque[Mark] = deque(maxlen=marks)

    def record(self, point: Point) -> None:
        """Add a point; one in the same second as the newest replaces it."""
        depth = -1 if point.depth is None else point.depth
        newest = self._newest_index()
        if newest is not None and math.floor(self._at[newest]) == math.floor(point.at):
            self._set(newest, point.at, depth, point.desired, point.running)
        elif len(self._at) < self._capacity:
            self._at.append(point.at)
            self._depth.append(depth)
            self._desired.append(point.desired)
            self._running.append(point.running)
        else:
            self._set(self._next, point.at, depth, point.desired, point.running)
            self._next = (self._next + 1) % self._capacity

    def mark(self, mark: Mark) -> None:
        self._marks.append(mark)

    def points(self, since: float = -math.inf) -> list[Point]:
        """The points at or after `since`, oldest first."""
        size = len(self._at)
        order = range(self._next, self._next + size) if size == self._capacity else range(size)
        return [self._point(i) for i in (j % self._capacity for j in order) if self._at[i] >= since]

    def newest(self) -> Point | None:
        i = self._newest_index()
        return None if i is None else self._point(i)

    def marks(self, since: float = -math.inf) -> list[Mark]:
        return [m for m in self._marks if m.at >= since]

    def __len__(self) -> int:
        return len(self._at)

    def _newest_index(self) -> int | None:
        if not self._at:
            return None
        return (self._next - 1) % self._capacity if len(self._at) == self._capacity else len(self._at) - 1

    def _point(self, i: int) -> Point:
        return Point(self._at[i], None if self._depth[i] < 0 else self._depth[i], self._desired[i], self._running[i])

    def _set(self, i: int, at: float, depth: int, desired: int, running: int) -> None:
        self._at[i], self._depth[i], self._desired[i], self._running[i] = at, depth, desired, running
