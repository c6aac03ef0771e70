"""One line per program for `workerd check`: what will run, how many, and as whom."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from workerd.config.model import Config, LimitsConfig, ProgramConfig
from workerd.config.units import format_duration, format_size

__all__ = ["summarize"]


def summarize(cfg: Config) -> list[str]:
    """`email: 2 × python -m app.worker --queue email (restart=always, user=app)`, in file order."""
    return [_line(program) for program in cfg.programs.values()]


def _line(program: ProgramConfig) -> str:
    command = program.command[2] if program.shell else shlex.join(program.command)
    notes = ["shell"] if program.shell else []
    notes.append(f"restart={program.restart.value}")
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


def _limits(limits: LimitsConfig) -> list[str]:
    shown: dict[str, Callable[[Any], str]] = {
        "memory": format_size, "address_space": format_size, "core": format_size, "file_size": format_size,
        "cpu_time": format_duration, "open_files": str, "tasks": str,
    }
    notes = [f"{name}={show(getattr(limits, name))}" for name, show in shown.items()
             if getattr(limits, name) is not None]
    if limits.cpu_percent is not None:
        notes.append(f"cpu_percent={limits.cpu_percent:g} over {format_duration(limits.cpu_window)}")
    return notes
