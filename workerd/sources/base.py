"""What every queue source offers the autoscaler: one async reading at a time.

A source reads the depth of a queue (and, where it can tell, the age of its oldest
job). It raises SourceError with a one-line reason when it cannot; the autoscaler
bounds every read with a timeout, and a failed read only holds the count.
Client libraries are imported by their own source module only, so an extra that
is not installed costs nothing unless a program uses it.
"""

from __future__ import annotations

from typing import Protocol

from workerd.core.scaling import QueueReading


class SourceError(Exception):
    """A reading failed; the message is shown in status as it is."""


class Source(Protocol):
    async def read(self) -> QueueReading: ...

    async def close(self) -> None: ...


def check_depth(value: object, what: str) -> int:
    """A depth from a client's answer: a non-negative integer, or SourceError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise SourceError(f"{what}: not a number: {value!r}")
    if value < 0:
        raise SourceError(f"{what}: negative depth {value}")
    return int(value)


def check_age(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        raise SourceError(f"{what}: not an age in seconds: {value!r}")
    return float(value)
