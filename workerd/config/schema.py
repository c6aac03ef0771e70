"""Every config key, declared once: name, kind, default, check and a one-line doc.

Parsing, unknown-key errors with "did you mean", the model's defaults, `workerd
check` and docs/config-reference.md all come from these declarations, so a key
cannot be documented one way and parsed another. Keys this version does not
implement yet are declared with `future=True` (only the default is accepted) or
as a `future` table (any use is an error), never silently ignored.

`python -m workerd.config.schema > docs/config-reference.md` regenerates the reference.
"""

from __future__ import annotations

import difflib
import enum
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Mapping, TypeVar, Union

from workerd.config.kinds import (
    BOOL,
    COMMAND,
    DURATION,
    ENDPOINT,
    ENVIRONMENT,
    FLOAT,
    INT,
    MODE,
    PATH,
    SIGNAL,
    SIZE,
    STRING,
    Kind,
    choice,
    toml_repr,
)
from workerd.config.units import InvalidValue
from workerd.core.states import RestartPolicy

T = TypeVar("T")

NOT_YET = "not supported yet by this version of workerd"


class Readiness(str, enum.Enum):
    """When a started worker counts as running (`ready`)."""

    UPTIME = "uptime"
    NOTIFY = "notify"


@dataclass(frozen=True)
class Key(Generic[T]):
    name: str
    kind: Kind[T]
    #: None: unset (the model holds None).
    default: T | None
    doc: str
    #: Returns why a parsed value is wrong, or None.
    check: Callable[[T], str | None] | None = None
    required: bool = False
    #: Only the default is accepted by this version; anything else is an error.
    future: bool = False
    #: For a default that depends on the system; `shown` then documents it.
    default_factory: Callable[[], T] | None = None
    shown: str | None = None

    def parse(self, raw: object) -> T:
        """Raw TOML -> checked value; raises InvalidValue."""
        value = self.kind.parse(raw)
        problem = self.check(value) if self.check is not None else None
        if problem is not None:
            raise InvalidValue(problem)
        if self.future and value != self.default:
            raise InvalidValue(f"{toml_repr(raw)} is {NOT_YET}")
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
CrossCheck = Callable[[Mapping[str, Any]], Union[tuple[str, str], None]]


@dataclass(frozen=True)
class Table:
    """A TOML table of declared keys; nested tables are declared as fields too."""

    name: str
    doc: str
    fields: tuple[Key[Any] | Table, ...] = ()
    #: Any use of the table is an error in this version.
    future: bool = False
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
        self.path = path
        self.message = message


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key_path(prefix: str, key: str) -> str:
    """`prefix` (a key path, or "") + one key, quoted unless bare: programs."app.v2"."""
    key = key if _BARE_KEY.fullmatch(key) else toml_repr(key)
    return f"{prefix}.{key}" if prefix else key


def unknown_key(name: str, known: list[str]) -> str:
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
            if spec.future:
                raise Invalid(where, NOT_YET)
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


def at_least(low: float) -> Callable[[float], str | None]:
    return lambda v: None if v >= low else f"must be >= {low}, got {v}"


def between(low: float, high: float) -> Callable[[float], str | None]:
    return lambda v: None if low <= v <= high else f"must be between {low} and {high}, got {v}"


def _fraction(v: float) -> str | None:
    return None if 0 <= v < 1 else f"must be >= 0 and < 1, got {v}"


def _permissions(v: int) -> str | None:
    return None if v <= 0o777 else f'must be at most 0777, got {v:04o} (write "0640", not 640)'


def _backoff_max(values: Mapping[str, Any]) -> tuple[str, str] | None:
    initial: float = values["backoff_initial"]
    if values["backoff_max"] >= initial:
        return None
    return "backoff_max", f"must be >= backoff_initial ({DURATION.show(initial)})"


def default_socket_path() -> Path:
    """/run/workerd/workerd.sock for root; else $XDG_RUNTIME_DIR/workerd.sock.

    Without an absolute XDG_RUNTIME_DIR (cron, su, some containers) it is
    /tmp/workerd-<uid>/workerd.sock, a per-user directory the daemon must create 0700.
    """
    uid = os.geteuid()
    if uid == 0:
        return Path("/run/workerd/workerd.sock")
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime_dir):
        return Path(runtime_dir) / "workerd.sock"
    return Path(f"/tmp/workerd-{uid}/workerd.sock")


MiB = 1024 * 1024

DAEMON = Table("daemon", "The daemon itself.", (
    Key("socket", PATH, None, "Control socket that `workerctl` talks to.",
        default_factory=default_socket_path,
        shown="`/run/workerd/workerd.sock` as root, else `$XDG_RUNTIME_DIR/workerd.sock` "
              "(`/tmp/workerd-<uid>/workerd.sock` when XDG_RUNTIME_DIR is unset)"),
    Key("socket_mode", MODE, 0o600, 'Permissions of the socket; "0660" with `socket_group` '
        "lets a group use workerctl.", check=_permissions),
    Key("socket_group", STRING, None, "Group owning the socket; must exist."),
    Key("log_dir", PATH, None, "Worker output goes to `<log_dir>/<program>.log`; unset: to the "
        'daemon\'s stderr, each line prefixed "program[instance]: ".'),
    Key("log_max_bytes", SIZE, 50 * MiB, "A program's log file is rotated at this size.",
        check=at_least(1)),
    Key("log_backups", INT, 5, "Rotated log files kept per program.", check=at_least(0)),
    Key("metrics", ENDPOINT, None, 'Prometheus /metrics address, "host:port"; unset: off.',
        future=True),
    Key("shutdown_timeout", DURATION, 60.0, "Upper bound on a graceful shutdown."),
    Key("reserve_memory", SIZE, 256 * MiB, "Never scale up while less memory than this is "
        "available (0 = off)."),
    Key("max_load", FLOAT, 0.0, "Nor while the 1-minute load average per core is above this "
        "(0 = off).", check=at_least(0)),
))  # fmt: skip

PROGRAM = Table("programs.NAME", "One program: a command run as `processes` workers.", (
    Key("command", COMMAND, None, "A string split like a shell would (run without one), or "
        "an argv array.", required=True),
    Key("shell", BOOL, False, 'Run the command string with `/bin/sh -c` instead.'),
    Key("directory", PATH, None, "Working directory; unset: the daemon's."),
    Key("user", STRING, None, "Run as this user, with its primary group; unset: the daemon's."),
    Key("group", STRING, None, "Run with this group instead of the user's primary group."),
    Key("umask", MODE, None, "File mode creation mask; unset: the daemon's.",
        check=_permissions),
    Key("environment", ENVIRONMENT, None, "Extra variables; numbers and booleans become "
        "strings. Overrides `env_file`; merges with `[defaults]` by variable."),
    Key("env_file", PATH, None, "`KEY=VALUE` lines (`#` comments, optional `export ` and "
        "quotes), read at load and reload."),
    Key("processes", INT, 1, "How many processes to run.", check=at_least(0)),
    Key("restart", choice(RestartPolicy), RestartPolicy.ALWAYS, "When an exited process is "
        "restarted (on-failure: after a non-zero exit or a signal)."),
    Key("start_seconds", DURATION, 1.0, "Up this long = started; an earlier exit counts as "
        "a failed start."),
    Key("backoff_initial", DURATION, 1.0, "Delay before a restart that follows a short run."),
    Key("backoff_factor", FLOAT, 2.0, "Each further delay is the previous one times this.",
        check=at_least(1)),
    Key("backoff_max", DURATION, 300.0, "Cap on the delay."),
    Key("backoff_jitter", FLOAT, 0.1, "Random +- fraction applied to each delay.",
        check=_fraction),
    Key("backoff_reset", DURATION, 600.0, "A run this long resets the backoff: the next "
        "restart is immediate."),
    Key("max_restarts", INT, 0, "That many failed starts in a row -> state fatal; 0 = never "
        "give up.", check=at_least(0)),
    Key("stop_signal", SIGNAL, 15, "Sent to the process group to stop it."),
    Key("stop_timeout", DURATION, 30.0, "Then SIGKILL to the whole process group."),
    Key("nice", INT, 0, "Scheduling priority, -20 (highest) to 19.", check=between(-20, 19)),
    Key("ready", choice(Readiness), Readiness.UPTIME, "uptime: running after `start_seconds`; "
        "notify: running when the worker sends READY=1.", future=True),
    Key("start_timeout", DURATION, 60.0, 'With ready = "notify": no READY=1 by then -> failed '
        "start."),
    Key("watchdog", DURATION, 0.0, 'With ready = "notify": no WATCHDOG=1 for this long -> '
        "hung, graceful restart; 0 = off.", future=True),
    Key("rolling", BOOL, False, "Replace processes one at a time on restart and reload (new "
        "one running, then old one stopped).", future=True),
    Table("limits", "Resource limits (RSS, CPU, rlimits).", future=True),
    Table("autoscale", "Process count from the depth of a queue.", future=True),
), checks=(_backoff_max,))  # fmt: skip


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _reference_table(table: Table) -> list[str]:
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    for spec in table.fields:
        if isinstance(spec, Table):
            kind, default = "`table`", "none"
            doc = f"`[{table.name}.{spec.name}]`: {spec.doc}"
            doc += f" **{NOT_YET.capitalize()}.**" if spec.future else ""
        else:
            kind, default, doc = f"`{spec.kind.name}`", spec.show_default(), spec.doc
            doc += f" **Other values are {NOT_YET}.**" if spec.future else ""
        lines.append(f"| `{spec.name}` | {_cell(kind)} | {_cell(default)} | {_cell(doc)} |")
    return lines


def render_reference() -> str:
    """The Markdown reference of every key, as committed in docs/config-reference.md."""
    return "\n".join([
        "# workerd configuration reference",
        "",
        "<!-- Generated by `python -m workerd.config.schema`; do not edit by hand. -->",
        "",
        "A TOML file with three tables: `[daemon]`, `[defaults]` and one `[programs.NAME]` per "
        "program (NAME matches `[A-Za-z0-9_.-]+`). An unknown key is an error.",
        "",
        'Durations are `"250ms"`, `"30s"`, `"5m"`, `"1h"` or a number of seconds. Sizes are '
        '`"512MiB"` (powers of 1024), `"1GB"` (powers of 1000) or a number of bytes. Modes are '
        'octal strings such as `"0600"`. Signals are names (`"TERM"`, `"SIGTERM"`) or numbers. '
        "Relative paths are relative to the directory of the config file.",
        "",
        "## `[daemon]`",
        "",
        *_reference_table(DAEMON),
        "",
        "## `[programs.NAME]` and `[defaults]`",
        "",
        "`[defaults]` may set any program key; a program's own value wins. Tables "
        "(`environment`) merge variable by variable.",
        "",
        *_reference_table(PROGRAM),
        "",
    ])


if __name__ == "__main__":
    print(render_reference(), end="")
