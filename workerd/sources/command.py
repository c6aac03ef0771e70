"""Depth from a command: it prints a number, or JSON {"depth": N, "age": seconds}.

The command is an argv (never a shell), run to its end on each reading in a process
group of its own; after `timeout`, or when the reading is cancelled, the whole group
is killed. It is started through the injected Launcher (see child.py): the daemon's
single reaper learns its exit. A non-zero exit is an error that quotes the last line
the command wrote to stderr.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from workerd.core.scaling import QueueReading
from workerd.sources.base import SourceError, check_age, check_depth
from workerd.sources.child import Launcher, run


class CommandSource:
    def __init__(self, argv: Sequence[str], timeout: float, launcher: Launcher) -> None:
        self._argv = tuple(argv)
        self._timeout = timeout
        self._launcher = launcher
        self._what = f"command {argv[0]}"

    async def read(self) -> QueueReading:
        try:
            output, status, complaint = await run(self._launcher, self._argv, self._timeout)
        except SourceError as exc:
            raise SourceError(f"{self._what}: {exc}") from None
        if status.code != 0:
            raise SourceError(f"{self._what}: {status.describe()}" + (f": {complaint}" if complaint else ""))
        return parse_output(output, self._what)

    async def close(self) -> None:
        """Nothing is kept between readings."""


def parse_output(output: bytes, what: str) -> QueueReading:
    """A number, or a JSON object with `depth` and optionally `age` (seconds)."""
    text = output.decode(errors="replace").strip()
    if not text:
        raise SourceError(f"{what}: printed nothing (expected a number)")
    try:
        value = json.loads(text)
    except ValueError:
        raise SourceError(f"{what}: expected a number or JSON, got {_quote(text)}") from None
    if isinstance(value, dict):
        if "depth" not in value:
            raise SourceError(f'{what}: the JSON has no "depth"')
        return QueueReading(check_depth(value["depth"], what), check_age(value.get("age"), what))
    return QueueReading(check_depth(value, what))


def _quote(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
