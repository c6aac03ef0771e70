"""Bounds on absurd numbers: `[daemon] max_processes` (its default derived from the box,
per program and in total), and the documented range of every duration and factor.

A typo such as `processes = 100000` or `stop_timeout = "99999999999h"` must be one
line at load, never a daemon forking until the OOM killer takes it."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from workerd.config import capacity
from workerd.config.capacity import Box, max_processes_for, read_box
from workerd.config.kinds import DURATION
from workerd.config.model import Config
from workerd.config.reference import render_reference
from workerd.config.schema import AUTOSCALE, DAEMON, LIMITS, PROGRAM
from workerd.config.tables import Key, Table

Loads = Callable[[str], Config]
Error = Callable[[str], str]

MiB = 1 << 20
GiB = 1 << 30
EMAIL = '[programs.email]\ncommand = "sleep 1"\n'
LIMIT_512 = "[daemon]\nmax_processes = 512\n"
SQLITE = 'source = "sqlite"\npath = "queue.db"\nquery = "SELECT count(*) FROM jobs"\n'


# -- the default: derived from the box ---------------------------------------------------


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        (Box(memory=64 * GiB, pid_max=4194304, nproc=None), 1024),  # a big box: the hard ceiling
        (Box(memory=1 * GiB, pid_max=4194304, nproc=None), 128),  # a small VPS: 8 MiB per process
        (Box(memory=4 * GiB, pid_max=32768, nproc=None), 512),
        (Box(memory=64 * GiB, pid_max=32768, nproc=600), 300),  # RLIMIT_NPROC: half the user's pids
        (Box(memory=64 * GiB, pid_max=1000, nproc=None), 500),  # a small pid space: half of it
        (Box(memory=4 * MiB, pid_max=10, nproc=1), 1),  # never 0: the daemon can run one
        (Box(memory=None, pid_max=None, nproc=None), 1024),  # unknown facts do not bind
    ],
)
def test_the_default_rule(box: Box, expected: int) -> None:
    assert max_processes_for(box) == expected


def test_the_box_facts_are_read_from_proc_and_rlimits(tmp_path: Path) -> None:
    (tmp_path / "sys" / "kernel").mkdir(parents=True)
    (tmp_path / "sys" / "kernel" / "pid_max").write_text("32768\n")
    (tmp_path / "meminfo").write_text("MemTotal:        1016232 kB\nMemFree:          123456 kB\n")
    soft = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    assert read_box(tmp_path) == Box(
        memory=1016232 * 1024, pid_max=32768, nproc=None if soft == resource.RLIM_INFINITY else soft
    )


def test_unreadable_box_facts_are_unknown(tmp_path: Path) -> None:
    (tmp_path / "meminfo").write_text("MemFree: 1 kB\n")
    box = read_box(tmp_path)
    assert (box.memory, box.pid_max) == (None, None)


def test_an_unset_max_processes_follows_the_box(loads: Loads, error: Error, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capacity, "read_box", lambda: Box(memory=1 * GiB, pid_max=4194304, nproc=None))
    assert loads(EMAIL).daemon.max_processes == 128
    assert error(EMAIL + "processes = 200\n") == (
        "workers.toml: programs.email.processes: 200 is over [daemon] max_processes (128)"
    )


@pytest.mark.parametrize(("value", "message"), [
    ("0", "must be between 1 and 4194304, got 0"),
    ("5000000", "must be between 1 and 4194304, got 5000000"),
])
def test_max_processes_itself_is_bounded(error: Error, value: str, message: str) -> None:
    assert error(f"[daemon]\nmax_processes = {value}\n") == f"workers.toml: daemon.max_processes: {message}"


# -- max_processes: per program and in total ---------------------------------------------


def test_a_program_over_max_processes(error: Error) -> None:
    assert error(LIMIT_512 + EMAIL + "processes = 100000\n") == (
        "workers.toml: programs.email.processes: 100000 is over [daemon] max_processes (512)"
    )


def test_a_count_set_in_defaults_blames_defaults(error: Error) -> None:
    assert error(LIMIT_512 + "[defaults]\nprocesses = 100000\n" + EMAIL) == (
        "workers.toml: defaults.processes: 100000 is over [daemon] max_processes (512)"
    )


def test_an_autoscale_max_over_max_processes(error: Error) -> None:
    text = LIMIT_512 + EMAIL + "[programs.email.autoscale]\n" + SQLITE + "max = 600\n"
    assert error(text) == "workers.toml: programs.email.autoscale.max: 600 is over [daemon] max_processes (512)"


def test_the_total_blames_the_program_that_goes_over(error: Error) -> None:
    text = LIMIT_512 + EMAIL + "processes = 300\n" + '[programs.sms]\ncommand = "sleep 1"\nprocesses = 300\n'
    assert error(text) == (
        "workers.toml: programs.sms.processes: 300 makes 600 processes in all, over [daemon] max_processes (512)"
    )


def test_the_total_counts_an_autoscaled_program_at_its_max(error: Error, loads: Loads) -> None:
    auto = EMAIL + "processes = 1000\n[programs.email.autoscale]\n" + SQLITE + "max = 500\n"
    fixed = '[programs.sms]\ncommand = "sleep 1"\nprocesses = 12\n'
    loads(LIMIT_512 + auto + fixed)  # `processes` is ignored under [autoscale]: 500 + 12
    assert error(LIMIT_512 + auto + fixed.replace("12", "13")) == (
        "workers.toml: programs.sms.processes: 13 makes 513 processes in all, over [daemon] max_processes (512)"
    )


def test_a_total_of_exactly_max_processes_is_fine(loads: Loads) -> None:
    config = loads(LIMIT_512 + EMAIL + "processes = 256\n" + '[programs.sms]\ncommand = "sleep 1"\nprocesses = 256\n')
    assert sum(p.processes for p in config.programs.values()) == config.daemon.max_processes == 512


def check(path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKERD_")}
    return subprocess.run([sys.executable, "-m", "workerd", "check", "-c", str(path)], capture_output=True,
                          text=True, timeout=20, check=False, env=env, stdin=subprocess.DEVNULL)


def test_workerd_check_refuses_a_typo_d_count_in_one_line(write: Callable[[str], Path]) -> None:
    result = check(write(EMAIL + "processes = 100000\n"))
    assert (result.returncode, result.stdout) == (2, "")
    (line,) = result.stderr.splitlines()
    assert "workers.toml: programs.email.processes: 100000 is over [daemon] max_processes (" in line, line


def test_workerd_check_states_the_total_and_the_limit(write: Callable[[str], Path]) -> None:
    auto = EMAIL + "[programs.email.autoscale]\n" + SQLITE + "max = 4\n"
    result = check(write(LIMIT_512 + auto + '[programs.sms]\ncommand = "sleep 1"\nprocesses = 3\n'))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].endswith(": ok, 2 program(s), at most 7 processes (max_processes 512)")


# -- durations and factors: a documented range each --------------------------------------

#: (where the key goes, key) -> its range, as the reference shows it.
DURATION_RANGES = {
    ("daemon", "shutdown_timeout"): ("0s", "24h"),
    ("daemon", "sample_interval"): ("100ms", "1h"),
    ("program", "start_seconds"): ("0s", "1h"),
    ("program", "backoff_initial"): ("0s", "24h"),
    ("program", "backoff_max"): ("0s", "24h"),
    ("program", "backoff_reset"): ("0s", "24h"),
    ("program", "stop_timeout"): ("0s", "24h"),
    ("program", "start_timeout"): ("100ms", "24h"),
    ("program", "watchdog"): ("0s", "24h"),
    ("limits", "cpu_window"): ("1s", "1h"),
    ("limits", "cpu_time"): ("1s", "8760h"),
    ("autoscale", "interval"): ("100ms", "1h"),
    ("autoscale", "scale_down_delay"): ("0s", "24h"),
    ("autoscale", "timeout"): ("100ms", "1h"),
    ("autoscale", "max_age"): ("0s", "24h"),
}
TABLES = {"daemon": DAEMON, "program": PROGRAM, "limits": LIMITS, "autoscale": AUTOSCALE}
#: Where a key of each table is written, and the path an error names.
WHERE = {
    "daemon": ("[daemon]\n", "daemon"),
    "program": (EMAIL, "programs.email"),
    "limits": (EMAIL + "[programs.email.limits]\n", "programs.email.limits"),
    "autoscale": (EMAIL + "[programs.email.autoscale]\n" + SQLITE, "programs.email.autoscale"),
}


def keys_of(table: Table) -> list[Key[object]]:
    return [f for f in table.fields if isinstance(f, Key)]


def test_every_duration_key_has_a_range() -> None:
    """A new duration key must be given a range (and a line above)."""
    durations = {(name, key.name) for name, table in TABLES.items() for key in keys_of(table)
                 if key.kind is DURATION}
    assert durations == set(DURATION_RANGES)


@pytest.mark.parametrize(("where", "key"), sorted(DURATION_RANGES))
def test_a_huge_duration_is_refused_naming_the_range(error: Error, where: str, key: str) -> None:
    prefix, path = WHERE[where]
    low, high = DURATION_RANGES[(where, key)]
    assert error(f'{prefix}{key} = "99999999999h"\n') == (
        f'workers.toml: {path}.{key}: must be between "{low}" and "{high}", got "99999999999h"'
    )


def test_the_bounds_themselves_are_accepted(loads: Loads, error: Error) -> None:
    assert loads(EMAIL + 'stop_timeout = "24h"\nstart_seconds = "0s"\n').programs["email"].stop_timeout == 86400
    assert error(EMAIL + 'stop_timeout = "86401s"\n') == (
        'workers.toml: programs.email.stop_timeout: must be between "0s" and "24h", got "86401s"'
    )
    assert error(EMAIL + "stop_timeout = 1e12\n") == (
        'workers.toml: programs.email.stop_timeout: must be between "0s" and "24h", got 1000000000000.0'
    )


@pytest.mark.parametrize(("value", "got"), [("1e308", "1e+308"), ("10.5", "10.5"), ("0.5", "0.5")])
def test_backoff_factor_is_between_1_and_10(error: Error, value: str, got: str) -> None:
    assert error(f"{EMAIL}backoff_factor = {value}\n") == (
        f"workers.toml: programs.email.backoff_factor: must be between 1 and 10, got {got}"
    )


@pytest.mark.parametrize("key", ["stop_timeout", "backoff_factor", "nice", "processes"])
def test_an_integer_too_big_for_a_float_is_one_line(error: Error, key: str) -> None:
    """TOML integers are unbounded in Python: 10**400 must not reach float() unguarded."""
    message = error(f"{EMAIL}{key} = {'9' * 400}\n")
    assert message.startswith(f"workers.toml: programs.email.{key}: "), message


def test_log_backups_is_bounded(error: Error) -> None:
    """Rotation renames every backup in turn: a billion of them would hang the daemon."""
    assert error("[daemon]\nlog_backups = 1000000000\n") == (
        "workers.toml: daemon.log_backups: must be between 0 and 100, got 1000000000"
    )


def test_a_tiny_log_max_bytes_with_many_backups_is_refused(error: Error) -> None:
    """`log_max_bytes = "1B"` with 1000 backups rotated (1000 renames) on every line
    and spun a core: a rotation is at least 64 KiB of output away, at most 100 renames."""
    assert error('[daemon]\nlog_max_bytes = "1B"\n') == (
        'workers.toml: daemon.log_max_bytes: must be 0 (no rotation) or >= "64KiB", got "1B"'
    )
    assert error("[daemon]\nlog_backups = 1000\n") == (
        "workers.toml: daemon.log_backups: must be between 0 and 100, got 1000"
    )


def reference_line(reference: str, key: str) -> str:
    (line,) = [line for line in reference.splitlines() if line.startswith(f"| `{key}` |")]
    return line


def test_the_reference_shows_each_range() -> None:
    reference = render_reference()
    for (_, key), (low, high) in DURATION_RANGES.items():
        assert f'Range: `"{low}"` to `"{high}"`.' in reference_line(reference, key), key
    assert "Range: `1` to `10`." in reference_line(reference, "backoff_factor")
    assert "Range: `1` to `4194304`." in reference_line(reference, "max_processes")
    assert "[daemon] max_processes" in reference_line(reference, "processes")
