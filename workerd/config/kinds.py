"""Value kinds: how a raw TOML value becomes a typed config value, and back.

A `Kind` pairs a parser (raw TOML value -> typed value, raising `InvalidValue`)
with the TOML spelling of a typed value, so every key of one type parses, reports
errors and shows its default alike. Messages quote what the user wrote, except
arrays and tables (described, not dumped) and environment values, which may be
secrets and are never shown.
"""

from __future__ import annotations

import datetime
import enum
import json
import math
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from workerd.config.units import (
    InvalidValue,
    format_duration,
    format_size,
    parse_duration,
    parse_mode,
    parse_signal,
    parse_size,
    signal_name,
)

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)


@dataclass(frozen=True)
class Kind(Generic[T]):
    #: The type column of the reference.
    name: str
    #: A raw TOML value -> the typed value; raises InvalidValue.
    parse: Callable[[object], T]
    #: A typed value as it would be written in the config file.
    show: Callable[[T], str]


def toml_type(raw: object) -> str:
    """The TOML type of a raw value, with its article: "an array"."""
    if isinstance(raw, bool):
        return "a boolean"
    if isinstance(raw, str):
        return "a string"
    if isinstance(raw, int):
        return "an integer"
    if isinstance(raw, float):
        return "a float"
    if isinstance(raw, list):
        return "an array"
    if isinstance(raw, dict):
        return "a table"
    if isinstance(raw, (datetime.date, datetime.time)):
        return "a date/time"
    return type(raw).__name__


def toml_repr(raw: object) -> str:
    """A scalar as the user wrote it (`"two"`, `true`, `5`); arrays and tables described."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, str):
        return json.dumps(raw, ensure_ascii=False)
    if isinstance(raw, (int, float)):
        return repr(raw)
    return toml_type(raw)


def expected(what: str, raw: object) -> InvalidValue:
    return InvalidValue(f"expected {what}, got {toml_repr(raw)}")


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _text(raw: object, what: str = "a string") -> str:
    """A non-empty string without NUL, which no path, name or argv may hold."""
    if not isinstance(raw, str):
        raise expected(what, raw)
    if not raw.strip():
        raise InvalidValue("must not be empty")
    if "\0" in raw:
        raise InvalidValue("must not contain a NUL character")
    return raw


def _bool(raw: object) -> bool:
    if not isinstance(raw, bool):
        raise expected("true or false", raw)
    return raw


def _int(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise expected("an integer", raw)
    return raw


def _float(raw: object) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise expected("a number", raw)
    try:
        value = float(raw)
    except OverflowError:  # a TOML integer may have 400 digits
        raise InvalidValue(f"{toml_repr(raw)} is too large") from None
    if not math.isfinite(value):
        raise InvalidValue(f"expected a finite number, got {toml_repr(raw)}")
    return value


def _unit(parse: Callable[[Any], T], what: str, *types: type) -> Callable[[object], T]:
    """Type-check first, so `stop_timeout = true` says "expected a duration"."""

    def parse_raw(raw: object) -> T:
        if isinstance(raw, bool) or not isinstance(raw, types):
            raise expected(what, raw)
        return parse(raw)

    return parse_raw


def _command(raw: object) -> str | tuple[str, ...]:
    """A string (split later, by shlex or by /bin/sh) or an argv array."""
    if isinstance(raw, list):
        if not all(isinstance(arg, str) and "\0" not in arg for arg in raw):
            raise InvalidValue("an argv array must hold only strings (without NUL)")
        if not raw or not raw[0]:
            raise InvalidValue("empty command")
        return tuple(raw)
    if isinstance(raw, str) and not raw.strip():
        raise InvalidValue("empty command")
    return _text(raw, "a string or an array of strings")


def _argv(raw: object) -> tuple[str, ...]:
    """A command as an argv: a string split like a shell would (never run by one), or
    an array taken as it is."""
    command = _command(raw)
    if isinstance(command, tuple):
        return command
    try:
        argv = tuple(shlex.split(command))
    except ValueError as e:  # shlex says only "No closing quotation" / "No escaped character"
        raise InvalidValue(f"cannot split: {str(e).lower()}") from None
    if not argv or not argv[0] or any("\0" in arg for arg in argv):
        raise InvalidValue("empty command" if not argv or not argv[0] else "a command must not contain NUL")
    return argv


def _environment(raw: object) -> Mapping[str, str]:
    """Strings as given; integers and floats by str(), booleans as "true"/"false".

    A value is never echoed in an error: it may be a secret. Only its name is.
    """
    if not isinstance(raw, dict):
        raise expected("a table of strings", raw)
    env: dict[str, str] = {}
    for name, value in raw.items():
        if not name or "=" in name or "\0" in name:
            raise InvalidValue(f"invalid variable name {name!r}")
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = str(value)
        elif not isinstance(value, str):
            raise InvalidValue(f"variable {name!r}: expected a string, got {toml_type(value)}")
        if "\0" in value:
            raise InvalidValue(f"variable {name!r}: must not contain a NUL character")
        env[name] = value
    return MappingProxyType(env)


def _endpoint(raw: object) -> tuple[str, int]:
    """(host, port) from "host:port", an IPv6 host in brackets: "[::1]:9808"; a port
    alone (":9808", "9808" or 9808) is on the loopback address."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    host, _, port = _text(raw).rpartition(":")
    host = host.removeprefix("[").removesuffix("]") or "127.0.0.1"
    if port.isascii() and port.isdigit() and 0 < int(port) < 65536:
        return host, int(port)
    raise InvalidValue(f'invalid address {toml_repr(raw)} (use "host:port")')


def _strings(raw: object) -> tuple[str, ...]:
    """A non-empty array of non-empty strings."""
    if not isinstance(raw, list) or not raw:
        raise expected("a non-empty array of strings", raw)
    return tuple(_text(item) for item in raw)


def choice(values: type[E]) -> Kind[E]:
    """One of an enum's values, spelled as the enum's value."""
    names = [_quoted(str(v.value)) for v in values]

    def parse(raw: object) -> E:
        for member in values:
            if raw == member.value:
                return member
        raise expected("one of " + ", ".join(names), raw)

    return Kind(" | ".join(names), parse, lambda v: _quoted(str(v.value)))


STRING = Kind[str]("string", _text, _quoted)
BOOL = Kind[bool]("boolean", _bool, lambda v: "true" if v else "false")
INT = Kind[int]("integer", _int, str)
FLOAT = Kind[float]("float", _float, str)
PATH = Kind[Path]("path", lambda raw: Path(_text(raw)), lambda v: _quoted(str(v)))
DURATION = Kind[float](
    "duration",
    _unit(parse_duration, "a duration", str, int, float),
    lambda v: _quoted(format_duration(v)),
)
SIZE = Kind[int]("size", _unit(parse_size, "a size", str, int), lambda v: _quoted(format_size(v)))
SIGNAL = Kind[int](
    "signal", _unit(parse_signal, "a signal", str, int), lambda v: _quoted(signal_name(v))
)
MODE = Kind[int]("octal mode", _unit(parse_mode, "a mode", str, int), lambda v: _quoted(f"{v:04o}"))
COMMAND = Kind[str | tuple[str, ...]](
    "string or array", _command, lambda v: json.dumps(v if isinstance(v, str) else list(v))
)
ARGV = Kind[tuple[str, ...]](
    "string or array", _argv, lambda v: json.dumps(list(v))
)
ENVIRONMENT = Kind[Mapping[str, str]](
    "table of strings",
    _environment,
    lambda v: "{ " + ", ".join(f"{k} = {_quoted(x)}" for k, x in v.items()) + " }",
)
STRINGS = Kind[tuple[str, ...]](
    "array of strings", _strings, lambda v: "[" + ", ".join(_quoted(x) for x in v) + "]"
)
ENDPOINT = Kind[tuple[str, int]]("host:port", _endpoint, lambda v: _quoted(f"{v[0]}:{v[1]}"))
