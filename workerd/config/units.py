"""Units in the config file: durations, sizes, signals and file modes.

Each parser turns what a user writes (TOML string or number) into the unit the
runtime uses (float seconds, int bytes, signal number, permission bits) and
raises `InvalidValue` naming the bad value and showing the accepted forms, so a
config error tells the user how to fix it.
"""

from __future__ import annotations

import math
import re
import signal

__all__ = [
    "InvalidValue",
    "format_duration",
    "format_size",
    "parse_duration",
    "parse_mode",
    "parse_signal",
    "parse_size",
    "signal_name",
]


class InvalidValue(ValueError):
    """A value that cannot be converted; the message names it and says what would do."""


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)?")
_SECONDS_PER = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_HINT = '(use e.g. "250ms", "30s", "5m", "1h" or seconds)'


def parse_duration(value: str | float) -> float:
    """Seconds from "250ms", "30s", "5m", "1h" or a number of seconds; never negative,
    always finite (each key then has its range)."""
    seconds = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = _to_float(value)
    elif isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match:
            number, unit = match.groups()
            seconds = float(number) * _SECONDS_PER[unit or "s"]
    if seconds is not None and math.isfinite(seconds) and seconds >= 0:
        return seconds
    raise InvalidValue(f"invalid duration {value!r} {_DURATION_HINT}")


def _to_float(number: float) -> float | None:
    """None for an integer too large for a float: a TOML integer may have 400 digits."""
    try:
        return float(number)
    except OverflowError:
        return None


def format_duration(seconds: float) -> str:
    """A spelling parse_duration reads back: 0.25 -> "250ms", 60 -> "60s", 300 -> "5m"."""
    if 0 < seconds < 1:
        return f"{_number(seconds * 1000)}ms"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{_number(seconds / 3600)}h"
    if seconds >= 120 and seconds % 60 == 0:
        return f"{_number(seconds / 60)}m"
    return f"{_number(seconds)}s"


def _number(x: float) -> str:
    """A number without a trailing ".0" and without float noise."""
    return str(int(x)) if x == int(x) else f"{x:.3f}".rstrip("0").rstrip(".")


_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+) ?(B|[kKMGT]B|[KMGT]iB)?")
_BYTES_PER: dict[str, int] = {
    "B": 1,
    "KB": 1000, "kB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
    "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4,
}  # fmt: skip
_SIZE_HINT = '(use e.g. "512MiB", "1GB", "100KB" or a number of bytes)'


def parse_size(value: str | int) -> int:
    """Bytes from "512MiB" (powers of 1024), "1GB" (powers of 1000) or a number of bytes.

    A bare "k"/"M" is refused: whether it means 1000 or 1024 is exactly the
    ambiguity the unit should settle.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= 0:
            return value
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value.strip())
        if match:
            number, unit = match.groups()
            whole, _, fraction = number.partition(".")
            # Exact integer arithmetic: "1.5GiB" is 1610612736 bytes, not a float near it.
            scaled = int(whole + fraction or "0") * _BYTES_PER[unit or "B"]
            size, remainder = divmod(scaled, int(10 ** len(fraction)))
            if remainder == 0:
                return size
            raise InvalidValue(f"invalid size {value!r} (not a whole number of bytes)")
    raise InvalidValue(f"invalid size {value!r} {_SIZE_HINT}")


def format_size(size: int) -> str:
    """An exact unit when one fits ("512MiB", "1GB"), else one decimal of the binary unit."""
    if size == 0:
        return "0B"
    for unit in ("TiB", "GiB", "MiB", "KiB", "TB", "GB", "MB", "KB"):
        if size % _BYTES_PER[unit] == 0:
            return f"{size // _BYTES_PER[unit]}{unit}"
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        if size >= _BYTES_PER[unit]:
            return f"{size / _BYTES_PER[unit]:.1f}{unit}"
    return f"{size}B"


_SIGNAL_HINT = '(use a name like "TERM" or a number)'


def parse_signal(value: str | int) -> int:
    """This platform's number for "TERM", "SIGTERM", "term", 15 or "15"."""
    number = value
    if isinstance(value, str):
        text = value.strip().upper()
        if text.isdigit():
            number = int(text)
        else:
            member = signal.Signals.__members__.get(
                text if text.startswith("SIG") else "SIG" + text
            )
            if member is not None:
                return int(member)
    if (
        isinstance(number, int)
        and not isinstance(number, bool)
        and number in signal.valid_signals()
    ):
        return number
    raise InvalidValue(f"invalid signal {value!r} {_SIGNAL_HINT}")


def signal_name(number: int) -> str:
    """How a signal is written in the config file: "TERM" for 15."""
    try:
        return signal.Signals(number).name.removeprefix("SIG")
    except ValueError:
        return str(number)


_MODE = re.compile(r"(?:0o)?([0-7]{1,4})")


def parse_mode(value: str | int) -> int:
    """Permission bits from "0600", "600" or "0o600" (always octal), or an int taken as is.

    A TOML integer is not reinterpreted: `umask = 22` is decimal 22. Strings are
    the unambiguous spelling, so the docs show those.
    """
    if isinstance(value, str):
        match = _MODE.fullmatch(value.strip())
        if match:
            return int(match.group(1), 8)
    elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o7777:
        return value
    raise InvalidValue(f'invalid mode {value!r} (use an octal string like "0600")')
