"""A workers.toml being written by an importer, and its rendering as TOML.

Every setting may carry a note: a comment written above it saying what the other
tool had and what was done with it. Nothing of the source is dropped silently: what
has no place in workers.toml goes to `unsupported`, listed as comments at the end.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

Value = str | int | float | bool | list[str] | dict[str, str]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
#: What a program name may not have (workerd/config/load.py), a run of it becoming `-`.
_NOT_IN_NAMES = re.compile(r"[^A-Za-z0-9_.-]+")
#: Program names workerd's loader refuses, and why.
RESERVED_NAMES = {"all": "`workerctl start all` means every program"}
#: Comments are wrapped to this width.
WIDTH = 100
#: What kill_mode = "mixed" does beyond a stop that reached the main process only
#: (supervisord's default, PM2's treekill = false).
MIXED_ADDS = ("kill_mode = \"mixed\" stops the main process first too, but once it has exited, what is left of its "
              "process group gets stop_signal, then SIGKILL within 1 s; and at stop_timeout the whole group gets "
              "SIGKILL")


@dataclass
class Setting:
    key: str
    value: Value
    notes: list[str] = field(default_factory=list)


@dataclass
class Section:
    """One TOML table: its settings in order, and the notes above its header."""

    settings: list[Setting] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def set(self, key: str, value: Value, *notes: str) -> None:
        """Set KEY (a later set replaces an earlier one, keeping both notes)."""
        for setting in self.settings:
            if setting.key == key:
                setting.value = value
                setting.notes += notes
                return
        self.settings.append(Setting(key, value, list(notes)))

    def get(self, key: str) -> Value | None:
        return next((s.value for s in self.settings if s.key == key), None)

    def note(self, text: str) -> None:
        self.notes.append(text)


@dataclass
class ProgramDraft(Section):
    name: str = ""
    #: Where the other tool has it (`[program:x]`), for the notes of others.
    origin: str = ""
    environment: dict[str, str] = field(default_factory=dict)
    limits: Section = field(default_factory=Section)


@dataclass
class Draft:
    #: The file imported, and the tool it belongs to ("supervisord", "procfile", "pm2").
    source: Path
    kind: str
    daemon: Section = field(default_factory=Section)
    defaults: ProgramDraft = field(default_factory=ProgramDraft)
    programs: dict[str, ProgramDraft] = field(default_factory=dict)
    #: One line per part of the source that has no equivalent, listed at the end.
    unsupported: list[str] = field(default_factory=list)

    def new_program(self, name: str, origin: str) -> ProgramDraft:
        """The program the other tool calls NAME (at ORIGIN), under a name workerd's loader
        takes and no earlier program has (`-2`, `-3`, ...), said when it differs: none is
        refused, lost or merged into another."""
        base = _NOT_IN_NAMES.sub("-", name)
        unique, suffix = base, 2
        while unique in self.programs or unique in RESERVED_NAMES:
            unique, suffix = f"{base}-{suffix}", suffix + 1
        holder = self.programs.get(base)
        program = self.programs[unique] = ProgramDraft(name=unique, origin=origin)
        why = ["workerd names are letters, digits and _.-"] if base != name else []
        if base in RESERVED_NAMES:
            why.append(f"{base} is reserved ({RESERVED_NAMES[base]})")
        elif holder is not None:
            why.append(f"{base} is {holder.origin}'s")
        if why:
            program.note(f"{origin}: {', and '.join(why)}" + (f": {unique}" if unique != base else ""))
        return program


def render(draft: Draft) -> str:
    lines = [f"# Imported from {draft.source} ({draft.kind}) by `workerd import`.",
             "# Each comment says what the original had where workers.toml has no exact equivalent.",
             "# Check it with: workerd check -c THIS_FILE"]
    lines += _table("daemon", draft.daemon)
    lines += _program_tables("defaults", draft.defaults)
    for name, program in draft.programs.items():
        lines += _program_tables(f"programs.{_key(name)}", program)
    if draft.unsupported:
        lines += ["", f"# Not imported ({len(draft.unsupported)}):"]
        lines += [line for text in draft.unsupported for line in _comment(text, "- ")]
    return "\n".join(lines) + "\n"


def _program_tables(header: str, program: ProgramDraft) -> list[str]:
    lines = _table(header, program)
    if program.environment:
        lines += ["", f"[{header}.environment]"]
        lines += [f"{_key(k)} = {_value(v)}" for k, v in program.environment.items()]
    lines += _table(f"{header}.limits", program.limits)
    return lines


def _table(header: str, section: Section) -> list[str]:
    if not section.settings and not section.notes:
        return []
    lines = ["", *(line for note in section.notes for line in _comment(note)), f"[{header}]"]
    for setting in section.settings:
        lines += [line for note in setting.notes for line in _comment(note)]
        lines.append(f"{_key(setting.key)} = {_value(setting.value)}")
    return lines


def _comment(text: str, bullet: str = "") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=f"# {bullet}", subsequent_indent="#" + " " * (len(bullet) + 3),
                         break_long_words=False, break_on_hyphens=False)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def _value(value: Value) -> str:
    """A TOML value: JSON's string escapes are TOML's basic-string escapes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
