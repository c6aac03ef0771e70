"""A program in one line: `workerd check`'s summary (what will run, how many, and as
whom) and what a reload that changed only a program's count reports."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from workerd.config.kinds import DURATION, FLOAT, SIZE, Kind
from workerd.config.model import Config, LimitsConfig, ProgramConfig
from workerd.config.schema import LIMIT_KEYS
from workerd.config.units import format_duration, format_size

__all__ = ["rescaled_line", "summarize"]

#: A value as `workerd check` writes it: like the file, without TOML's quotes.
_PLAIN: dict[Kind[Any], Callable[[Any], str]] = {
    SIZE: format_size, DURATION: format_duration, FLOAT: lambda v: f"{v:g}",
}


def summarize(cfg: Config) -> list[str]:
    """`email: 2 × python -m app.worker --queue email (restart=always, user=app)`, in file order."""
    return [_line(program) for program in cfg.programs.values()]


def _line(program: ProgramConfig) -> str:
    command = program.command[2] if program.shell else shlex.join(program.command)
    notes = ["shell"] if program.shell else []
    notes.append(f"restart={program.restart.value}")
    if not program.autostart:
        notes.append("autostart=false")
    if program.user is not None:
        notes.append(f"user={program.user}")
    if program.group is not None:
        notes.append(f"group={program.group}")
    if program.nice:
        notes.append(f"nice={program.nice}")
    notes += _limits(program.limits)
    auto = program.autoscale
    count = str(program.processes) if auto is None else f"{auto.min}..{auto.max}"
    if auto is not None:
        notes.append(f"autoscale on {auto.source.value}, {auto.per_worker} jobs per process")
    return f"{program.name}: {count} × {command} ({', '.join(notes)})"


def count_of(program: ProgramConfig) -> str:
    """How many processes the config asks for: "3", or "1..8 (redis)" when autoscaled."""
    auto = program.autoscale
    return str(program.processes) if auto is None else f"{auto.min}..{auto.max} ({auto.source.value})"


def rescaled_line(old: ProgramConfig, new: ProgramConfig) -> str:
    """What a reload that changed only a program's count (or autostart) reports."""
    before, after = count_of(old), count_of(new)
    if before == after:
        return f"changed: {new.name} (autostart = {str(new.autostart).lower()}: applies when the daemon starts)"
    return f"scaled: {new.name} {before} -> {after}"


def _limits(limits: LimitsConfig) -> list[str]:
    """`memory=512MiB`, `cpu_percent=95 over 30s`, ...: each limit set, in the schema's order."""
    notes = []
    for key in LIMIT_KEYS:
        value = getattr(limits, key.name)
        if value is not None:
            note = f"{key.name}={_PLAIN.get(key.kind, str)(value)}"
            notes.append(f"{note} over {format_duration(limits.cpu_window)}" if key.name == "cpu_percent" else note)
    return notes
