"""No source failure stops autoscaling: whatever a source's read raises (a client's
bug, a protocol surprise) is a failed reading, logged once with its traceback; the
loop goes on reading, with a backoff, and the source is made anew.

The Autoscaler runs on a real event loop here with a stand-in supervisor that
records what it is told, and a source that raises what a client library raised
in the field (redis-py 8's AttributeError on a garbage HELLO answer).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from workerd.config.model import DaemonConfig
from workerd.core.scaling import Depth, QueueEvent, QueueReading, ReadFailed
from workerd.runtime import autoscaler as autoscaler_module
from workerd.runtime.autoscaler import Autoscaler


@dataclass
class RecordingSupervisor:
    """What the Autoscaler reads of a supervisor, and the events it hands over."""

    programs: dict[str, Any]
    events: list[QueueEvent] = field(default_factory=list)
    config: Any = field(default_factory=lambda: SimpleNamespace(daemon=DaemonConfig(socket=Path("/nonexistent"))))

    def on_queue(self, name: str, event: QueueEvent) -> None:
        self.events.append(event)


class FlakySource:
    """Raises `errors` (one per read), then reads a depth of 3."""

    made: ClassVar[list[FlakySource]] = []

    def __init__(self, errors: list[BaseException]) -> None:
        self.errors = errors
        self.closed = False
        #: When each read began (the loop's clock).
        self.reads: list[float] = []
        FlakySource.made.append(self)

    async def read(self) -> QueueReading:
        self.reads.append(asyncio.get_running_loop().time())
        if self.errors:
            raise self.errors.pop(0)
        return QueueReading(3, None)

    async def close(self) -> None:
        self.closed = True


def program(interval: float = 0.01) -> Any:
    autoscale = SimpleNamespace(interval=interval, timeout=1.0)
    return SimpleNamespace(config=SimpleNamespace(autoscale=autoscale), removing=False, wanted=1)


def run_until(supervisor: RecordingSupervisor, scaler: Autoscaler, done: Any, limit: float = 5.0) -> None:
    async def main() -> None:
        scaler.update()
        deadline = asyncio.get_running_loop().time() + limit
        while not done() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.005)
        scaler.stop()
        assert await scaler.wait_closed(2.0)

    asyncio.run(main())


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """The errors the next sources raise, shared: a source made anew goes on with them."""
    errors: list[BaseException] = []
    FlakySource.made = []
    monkeypatch.setattr(autoscaler_module, "make_source", lambda config, launcher: FlakySource(errors))
    monkeypatch.setattr(autoscaler_module, "make_dead_letter_source", lambda config, launcher: None)
    return errors


def test_an_unexpected_exception_is_a_failed_reading_and_the_loop_goes_on(
        flaky: list[BaseException], caplog: pytest.LogCaptureFixture) -> None:
    flaky.extend([AttributeError("'int' object has no attribute 'get'")] * 3)
    supervisor = RecordingSupervisor({"w": program()})
    with caplog.at_level(logging.INFO, logger="workerd"):
        run_until(supervisor, Autoscaler(supervisor, launcher=None),  # type: ignore[arg-type]
                  lambda: any(isinstance(e, Depth) for e in supervisor.events))
    failed = [e for e in supervisor.events if isinstance(e, ReadFailed)]
    assert len(failed) == 3, supervisor.events
    assert "AttributeError" in failed[0].error and "'int' object has no attribute 'get'" in failed[0].error
    assert isinstance(supervisor.events[3], Depth) and supervisor.events[3].reading.depth == 3
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].exc_info is not None, "the first unexpected failure is logged with its traceback"
    assert "w:" in errors[0].getMessage()


def test_the_source_is_made_anew_after_an_unexpected_exception(flaky: list[BaseException]) -> None:
    """A client that raised from inside its protocol handling may be left in any state."""
    flaky.extend([RuntimeError("client bug")])
    supervisor = RecordingSupervisor({"w": program()})
    run_until(supervisor, Autoscaler(supervisor, launcher=None),  # type: ignore[arg-type]
              lambda: any(isinstance(e, Depth) for e in supervisor.events))
    assert len(FlakySource.made) == 2
    assert all(source.closed for source in FlakySource.made)


def test_unexpected_failures_back_off(flaky: list[BaseException]) -> None:
    """The pauses after unexpected failures double from the interval (a sleep never
    ends early, so the lower bounds hold on any machine)."""
    flaky.extend([KeyError("x")] * 4)
    supervisor = RecordingSupervisor({"w": program(interval=0.05)})
    run_until(supervisor, Autoscaler(supervisor, launcher=None),  # type: ignore[arg-type]
              lambda: any(isinstance(e, Depth) for e in supervisor.events))
    reads = [t for source in FlakySource.made for t in source.reads]
    gaps = [later - earlier for earlier, later in itertools.pairwise(reads)]
    assert len(gaps) >= 4, reads
    for gap, pause in zip(gaps, [0.05, 0.1, 0.2, 0.4], strict=False):
        assert gap >= pause * 0.9, (gaps, pause)
