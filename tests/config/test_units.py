from __future__ import annotations

import signal

import pytest

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

HINT = '(use e.g. "250ms", "30s", "5m", "1h" or seconds)'


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("0s", 0.0),
        ("10", 10.0),
        (" 2m ", 120.0),
        (2, 2.0),
        (0.5, 0.5),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5 minutes", f"invalid duration '5 minutes' {HINT}"),
        ("-5s", f"invalid duration '-5s' {HINT}"),
        (-1, f"invalid duration -1 {HINT}"),
        ("1d", f"invalid duration '1d' {HINT}"),
        ("", f"invalid duration '' {HINT}"),
        ("30S", f"invalid duration '30S' {HINT}"),
        (float("inf"), f"invalid duration inf {HINT}"),
        (True, f"invalid duration True {HINT}"),
    ],
)
def test_parse_duration_rejects(value: str | float, message: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_duration(value)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("value", ["9" * 400 + "s", "9" * 306 + "h", 10**400], ids=["400 digits", "overflows", "int"])
def test_parse_duration_rejects_what_no_float_holds(value: str | int) -> None:
    """Each key then has its range; a duration past any float never reaches it as inf."""
    with pytest.raises(InvalidValue, match=r"^invalid duration "):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (0.25, "250ms"),
        (0.0015, "1.5ms"),
        (1.5, "1.5s"),
        (30.0, "30s"),
        (60.0, "60s"),
        (90.0, "90s"),
        (300.0, "5m"),
        (5400.0, "90m"),
        (3600.0, "1h"),
        (7200.0, "2h"),
    ],
)
def test_format_duration_reads_back(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512MiB", 512 * 1024**2),
        ("1GB", 10**9),
        ("4GiB", 4 * 1024**3),
        ("100KB", 100_000),
        ("1kB", 1000),
        ("2TiB", 2 * 1024**4),
        ("3TB", 3 * 10**12),
        ("10B", 10),
        ("1024", 1024),
        ("1.5GiB", 1536 * 1024**2),
        ("0.3KB", 300),
        ("512 MiB", 512 * 1024**2),
        (0, 0),
        (4096, 4096),
    ],
)
def test_parse_size(text: str | int, size: int) -> None:
    assert parse_size(text) == size


SIZE_HINT = '(use e.g. "512MiB", "1GB", "100KB" or a number of bytes)'


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10k", f"invalid size '10k' {SIZE_HINT}"),
        ("5 gigs", f"invalid size '5 gigs' {SIZE_HINT}"),
        ("1gib", f"invalid size '1gib' {SIZE_HINT}"),
        ("1kiB", f"invalid size '1kiB' {SIZE_HINT}"),
        (-1, f"invalid size -1 {SIZE_HINT}"),
        (True, f"invalid size True {SIZE_HINT}"),
        ("1.5B", "invalid size '1.5B' (not a whole number of bytes)"),
    ],
)
def test_parse_size_rejects(value: str | int, message: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_size(value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (100, "100B"),
        (512 * 1024**2, "512MiB"),
        (4 * 1024**3, "4GiB"),
        (10**9, "1GB"),
        (100_000, "100KB"),
        (123_456_789, "117.7MiB"),
    ],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("TERM", signal.SIGTERM),
        ("SIGTERM", signal.SIGTERM),
        ("term", signal.SIGTERM),
        ("sigint", signal.SIGINT),
        ("QUIT", signal.SIGQUIT),
        (15, 15),
        ("9", 9),
    ],
)
def test_parse_signal(value: str | int, number: int) -> None:
    assert parse_signal(value) == number


@pytest.mark.parametrize("value", ["TREM", "SIG", "", 0, 999, -15, True])
def test_parse_signal_rejects(value: str | int) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_signal(value)
    assert str(caught.value) == f'invalid signal {value!r} (use a name like "TERM" or a number)'


def test_signal_name() -> None:
    assert signal_name(15) == "TERM"
    assert signal_name(signal.SIGRTMIN + 1) == str(signal.SIGRTMIN + 1)


@pytest.mark.parametrize(
    ("value", "mode"),
    [("0600", 0o600), ("600", 0o600), ("0o640", 0o640), ("022", 0o22), (0o600, 0o600), (0, 0)],
)
def test_parse_mode(value: str | int, mode: int) -> None:
    assert parse_mode(value) == mode


@pytest.mark.parametrize("value", ["0800", "rw-------", "", "07777777", -1, 0o10000, True])
def test_parse_mode_rejects(value: str | int) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_mode(value)
    assert str(caught.value) == f'invalid mode {value!r} (use an octal string like "0600")'
