"""Each program's last hour (core.history), kept by the daemon for the console and
`workerctl history`.

Event-driven and cheap whatever the event rate: a change in the supervisor (a slot's
state, a queue reading: `Settled` on the supervisor's feed) arms one timer on the
Clock, and when it fires every program gets one point (core.history keeps at most one
a second) and `Recorded` goes on the feed. Restarts and limits are marked as they are
counted (`RestartCounted`). Nothing runs while nothing changes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from workerd.core.history import MARKS, POINTS, History, Mark, Point
from workerd.process.clock import Clock
from workerd.runtime.feed import Feed, Recorded, RestartCounted, Settled
from workerd.runtime.supervisor import Supervisor

#: How long after a change the points are taken (changes within it share them).
RECORD_DELAY = 0.5


class Timeline:
    def __init__(self, supervisor: Supervisor, clock: Clock, feed: Feed) -> None:
        self._supervisor = supervisor
        self._clock = clock
        self._feed = feed
        self.histories: dict[str, History] = {}
        self._pending: asyncio.TimerHandle | None = None

    def changed(self, _: Settled) -> None:
        if self._pending is None:
            self._pending = self._clock.call_later(RECORD_DELAY, self.record)

    def record(self) -> None:
        """One point for every program now; a program a reload removed is forgotten."""
        self.close()
        now = self._clock.now()
        programs = self._supervisor.programs
        for name in self.histories.keys() - programs.keys():
            del self.histories[name]
        for name, program in programs.items():
            scale = program.scale
            depth = None
            if scale is not None and scale.last_reading is not None and scale.error is None:
                depth = scale.last_reading.depth
            self.history(name).record(Point(now, depth, program.target, program.all_running))
        self._feed.publish(Recorded())

    def history(self, name: str) -> History:
        return self.histories.setdefault(name, History())

    def marked(self, restart: RestartCounted) -> None:
        kind = "limit" if restart.reason == "limit" else "restart"
        self.history(restart.program).mark(Mark(restart.at, kind, f"{restart.reason}: {restart.what}"))

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None


def history_document(history: History, name: str, since: float, now: float) -> dict[str, Any]:
    """The last SINCE seconds of a program, times as Unix seconds (the daemon's clock is
    monotonic): what `workerctl history --json` prints and the console draws."""
    wall = _wall(now)
    return {
        "program": name,
        "bound": {"points": POINTS, "marks": MARKS},
        "points": [wall(p) for p in history.points(now - since)],
        "marks": [wall(m) for m in history.marks(now - since)],
    }


def news_document(history: History, marks_since: float, now: float) -> dict[str, Any]:
    """What the console's stream sends of a program: its newest point, its marks since."""
    wall = _wall(now)
    newest = history.newest()
    return {"points": [] if newest is None else [wall(newest)],
            "marks": [wall(m) for m in history.marks(marks_since)]}


def _wall(now: float) -> Callable[[Point | Mark], list[Any]]:
    offset = time.time() - now

    def row(item: Point | Mark) -> list[Any]:
        at = round(item.at + offset, 3)
        return [at, item.depth, item.desired, item.running] if isinstance(item, Point) else [at, item.kind, item.text]

    return row
