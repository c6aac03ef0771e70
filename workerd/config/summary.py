"""One line per program for `workerd check`: what will run, how many, and as whom."""

from __future__ import annotations

import shlex

from workerd.config.model import Config, ProgramConfig

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
    return f"{program.name}: {program.processes} × {command} ({', '.join(notes)})"
