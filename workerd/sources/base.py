"""What every queue source offers the autoscaler: one async reading at a time.

A source reads the depth of a queue (and, where it can tell, the age of its oldest
job). It raises SourceError with a one-line reason when it cannot; the autoscaler
bounds every read with a timeout, and a failed read only holds the count.
Client libraries are imported by their own source module only, so an extra that
is not installed costs nothing unless a program uses it.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, TypeGuard, runtime_checkable

from workerd.core.scaling import QueueReading


class SourceError(Exception):
    """A reading failed; the message is shown in status as it is."""


class Source(Protocol):
    async def read(self) -> QueueReading: ...

    async def close(self) -> None: ...


@runtime_checkable
class PushSource(Protocol):
    """A source whose broker can say a job arrived (Redis keyspace notifications): the
    autoscaler reads at once instead of at the next interval, for a program at zero."""

    #: Set by the broker's push; cleared by the autoscaler before each reading.
    pushed: asyncio.Event

    def watch(self) -> None:
        """Start listening for pushes (in the background, retrying on errors)."""


def _finite(value: object) -> TypeGuard[int | float]:
    """A real number, not NaN nor infinite nor absurdly large (JSON may carry any)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return abs(value) < 2**63  # False for NaN and the infinities too


def check_depth(value: object, what: str) -> int:
    """A depth from a client's answer: a non-negative integer, or SourceError."""
    if not _finite(value):
        raise SourceError(f"{what}: not a number: {value!r}")
    if value < 0:
        raise SourceError(f"{what}: negative depth {value}")
    return int(value)


def check_age(value: object, what: str) -> float | None:
    if value is None:
        return None
    if not _finite(value) or value < 0:
        raise SourceError(f"{what}: not an age in seconds: {value!r}")
    return float(value)


def redact(url: str) -> str:
    """A URL fit for status and logs: a password in it is replaced by `***`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hostport}{slash}{tail}"


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (client errors often span several), or its
    type when it has none (a bare TimeoutError)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
