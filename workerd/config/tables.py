"""How a table of declared keys is parsed, merged and completed.

The machinery behind `schema`: a `Key` knows its kind, default, range, check,
whether this version accepts more than its default and, in the autoscale table,
the sources that read it; a `Table` holds keys and
nested tables. Adding a sub-table (limits, autoscale) is declaring its keys.
Values travel as `Setting`s that remember the key path they were set at, so an
error found late (a cross-key check, a user lookup) still names the right line
of the file: `programs.email.backoff_max` or `defaults.backoff_max`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from workerd.config.kinds import Kind, toml_repr
from workerd.config.units import InvalidValue

T = TypeVar("T")



@dataclass(frozen=True)
class Range:
    """The values a numeric key accepts, both ends included; no `high`: no upper end.

    Declared rather than hidden in a check, so the reference documents every range
    and every message shows the bounds as the user would write them ("24h", not 86400).
    """

    low: float
    high: float | None = None
    #: What 0 means when 0 is accepted below `low` (log_max_bytes: "no rotation").
    zero: str | None = None

    def problem(self, value: Any, raw: object, show: Callable[[Any], str]) -> str | None:
        """Why `value` (written `raw`) is out of range, or None."""
        if (value >= self.low and (self.high is None or value <= self.high)) or (value == 0 and self.zero):
            return None
        got = toml_repr(raw)
        zero = f"0 ({self.zero}) or " if self.zero else ""
        if self.high is None:
            return f"must be {zero}>= {show(self.low)}, got {got}"
        return f"must be {zero}between {show(self.low)} and {show(self.high)}, got {got}"

    def spelled(self, show: Callable[[Any], str]) -> str:
        zero = f"`0` ({self.zero}), or " if self.zero else ""
        if self.high is None:
            return f"{zero}`{show(self.low)}` or more"
        return f"{zero}`{show(self.low)}` to `{show(self.high)}`"


@dataclass(frozen=True)
class Key(Generic[T]):
    """One key: how it parses, its default, its check and its line in the reference."""

    name: str
    kind: Kind[T]
    #: None: unset (the model holds None).
    default: T | None
    doc: str
    #: The values accepted (a number, a duration or a size); shown in the reference.
    bounds: Range | None = None
    #: Returns why a parsed value is wrong, or None.
    check: Callable[[T], str | None] | None = None
    required: bool = False
    #: For a default that depends on the system; `shown` then documents it.
    default_factory: Callable[[], T] | None = None
    shown: str | None = None
    #: In a table whose keys depend on one of its values (autoscale's `source`): the
    #: values that read this key if given, and those that need it. Neither: all read it.
    optional_for: tuple[enum.Enum, ...] = ()
    required_for: tuple[enum.Enum, ...] = ()
    #: Read only when the daemon starts: a reload that changes it says it waits for the next start.
    at_start: bool = False

    def parse(self, raw: object) -> T:
        """Raw TOML -> checked value; raises InvalidValue."""
        value = self.kind.parse(raw)
        problem = None if self.bounds is None else self.bounds.problem(value, raw, self.kind.show)
        if problem is None and self.check is not None:
            problem = self.check(value)
        if problem is not None:
            raise InvalidValue(problem)
        return value

    def initial(self) -> T | None:
        return self.default_factory() if self.default_factory is not None else self.default

    def show_default(self) -> str:
        if self.shown is not None:
            return self.shown
        if self.required:
            return "required"
        return "unset" if self.default is None else f"`{self.kind.show(self.default)}`"


#: A rule over several keys of one table: returns (key to blame, why) or None.
CrossCheck = Callable[[Mapping[str, Any]], tuple[str, str] | None]


@dataclass(frozen=True)
class Table:
    """A TOML table of declared keys; nested tables are declared as fields too."""

    name: str
    doc: str
    fields: tuple[Key[Any] | Table, ...] = ()
    checks: tuple[CrossCheck, ...] = ()

    def field(self, name: str) -> Key[Any] | Table | None:
        return next((f for f in self.fields if f.name == name), None)

    def defaults(self) -> dict[str, Any]:
        """The declared default of every key (None for system-dependent ones)."""
        return {f.name: f.default for f in self.fields if isinstance(f, Key)}


@dataclass(frozen=True)
class Setting:
    """A parsed value and the key path it was set at (or would have been)."""

    value: Any
    path: str


class Invalid(Exception):
    """A value error at a key path; `load` adds the file name."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key_path(prefix: str, key: str) -> str:
    """`prefix` (a key path, or "") + one key, quoted unless bare: programs."app.v2"."""
    key = key if _BARE_KEY.fullmatch(key) else toml_repr(key)
    return f"{prefix}.{key}" if prefix else key


def unknown_key(name: str, known: list[str]) -> str:
    import difflib  # only on the error path: the daemon's start stays lean

    close = difflib.get_close_matches(name, known, n=1)
    return f"unknown key (did you mean {close[0]!r}?)" if close else "unknown key"


def parse_table(table: Table, raw: Mapping[str, object], path: str) -> dict[str, Setting]:
    """The keys present in `raw`, parsed and checked; raises Invalid at the first bad one."""
    settings: dict[str, Setting] = {}
    for name, value in raw.items():
        where = key_path(path, name)
        spec = table.field(name)
        if spec is None:
            raise Invalid(where, unknown_key(name, [f.name for f in table.fields]))
        if isinstance(spec, Table):
            if not isinstance(value, dict):
                raise Invalid(where, f"expected a table, got {toml_repr(value)}")
            settings[name] = Setting(parse_table(spec, value, where), where)
        else:
            try:
                settings[name] = Setting(spec.parse(value), where)
            except InvalidValue as e:
                raise Invalid(where, str(e)) from None
    return settings


def overlay(base: Mapping[str, Setting], top: Mapping[str, Setting]) -> dict[str, Setting]:
    """`top` wins key by key; tables (environment, sub-tables) merge one level down."""
    merged = dict(base)
    for name, setting in top.items():
        under = merged.get(name)
        if under is not None and isinstance(under.value, Mapping):
            setting = Setting({**under.value, **setting.value}, setting.path)
        merged[name] = setting
    return merged


def complete(table: Table, given: Mapping[str, Setting], path: str) -> dict[str, Setting]:
    """Every key of `table`: given or default; then the cross-key checks."""
    settings: dict[str, Setting] = {}
    for spec in table.fields:
        if spec.name in given:
            settings[spec.name] = given[spec.name]
        elif isinstance(spec, Key) and spec.required:
            raise Invalid(path, f"missing required key {spec.name!r}")
        else:
            initial = spec.initial() if isinstance(spec, Key) else None
            settings[spec.name] = Setting(initial, key_path(path, spec.name))
    values = {name: s.value for name, s in settings.items()}
    for check in table.checks:
        problem = check(values)
        if problem is not None:
            raise Invalid(settings[problem[0]].path, problem[1])
    return settings
