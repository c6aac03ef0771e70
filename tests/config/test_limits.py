"""`[programs.NAME.limits]`, `[defaults.limits]` and `[daemon] sample_interval`: parsing,
merging, the exact error lines, and what `workerd check` says about limits."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from workerd.config.model import Config, LimitsConfig

Loads = Callable[[str], Config]
Error = Callable[[str], str]

MiB = 1024 * 1024
GiB = 1024 * MiB
CORES = os.cpu_count() or 1
PROGRAM = '[programs.a]\ncommand = "sleep 1"\n'
LIMITS = PROGRAM + "[programs.a.limits]\n"
SIZE_HINT = '(use e.g. "512MiB", "1GB", "100KB" or a number of bytes)'
DURATION_HINT = '(use e.g. "250ms", "30s", "5m", "1h" or seconds)'


def limits_of(loads: Loads, text: str, name: str = "a") -> LimitsConfig:
    return loads(text).programs[name].limits


# -- parsing ------------------------------------------------------------------------------


def test_no_limits_by_default(loads: Loads) -> None:
    cfg = loads(PROGRAM)
    limits = cfg.programs["a"].limits
    assert limits == LimitsConfig()
    assert (limits.memory, limits.cpu_percent, limits.open_files, limits.tasks) == (None, None, None, None)
    assert (limits.address_space, limits.core, limits.cpu_time, limits.file_size) == (None, None, None, None)
    assert limits.cpu_window == 60.0
    assert limits.watched is False
    assert cfg.daemon.sample_interval == 1.0


def test_an_empty_limits_table_is_no_limits(loads: Loads) -> None:
    assert limits_of(loads, LIMITS) == LimitsConfig()


def test_every_key_parses(loads: Loads) -> None:
    limits = limits_of(loads, LIMITS + """
        memory = "512MiB"
        cpu_percent = 95
        cpu_window = "90s"
        open_files = 4096
        tasks = 64
        address_space = "4GiB"
        core = 0
        cpu_time = "1h"
        file_size = "1GB"
    """.replace("\n        ", "\n"))
    assert limits == LimitsConfig(
        memory=512 * MiB,
        cpu_percent=95.0,
        cpu_window=90.0,
        open_files=4096,
        tasks=64,
        address_space=4 * GiB,
        core=0,
        cpu_time=3600.0,
        file_size=10**9,
    )
    assert limits.watched


@pytest.mark.parametrize(
    ("line", "field", "value"),
    [
        ("memory = 4194304", "memory", 4 * MiB),
        ('memory = "4MiB"', "memory", 4 * MiB),
        ('memory = "1.5GiB"', "memory", 3 * GiB // 2),
        ('memory = "100MB"', "memory", 100 * 10**6),
        ("cpu_percent = 12.5", "cpu_percent", 12.5),
        (f"cpu_percent = {100 * CORES}", "cpu_percent", 100.0 * CORES),
        ('cpu_window = "1s"', "cpu_window", 1.0),
        ('cpu_window = "5m"', "cpu_window", 300.0),
        ("cpu_window = 2.5", "cpu_window", 2.5),
        ("open_files = 16", "open_files", 16),
        ("tasks = 1", "tasks", 1),
        ('address_space = "32MiB"', "address_space", 32 * MiB),
        ('core = "1MiB"', "core", MiB),
        ('cpu_time = "1s"', "cpu_time", 1.0),
        ('cpu_time = "2m"', "cpu_time", 120.0),
        ("file_size = 0", "file_size", 0),
        ('file_size = "100KB"', "file_size", 100_000),
    ],
)
def test_each_key_and_unit(loads: Loads, line: str, field: str, value: object) -> None:
    limits = limits_of(loads, LIMITS + line + "\n")
    assert getattr(limits, field) == value
    others = {name: getattr(limits, name) for name in LimitsConfig.__dataclass_fields__ if name != field}
    assert others == {name: getattr(LimitsConfig(), name) for name in others}


def test_watched_only_with_memory_or_cpu_percent(loads: Loads) -> None:
    assert limits_of(loads, LIMITS + 'memory = "64MiB"\n').watched
    assert limits_of(loads, LIMITS + "cpu_percent = 50\n").watched
    assert not limits_of(loads, LIMITS + "open_files = 64\ntasks = 10\ncpu_window = '5s'\n").watched


def test_sample_interval(loads: Loads) -> None:
    assert loads('[daemon]\nsample_interval = "250ms"\n').daemon.sample_interval == 0.25
    assert loads('[daemon]\nsample_interval = "100ms"\n').daemon.sample_interval == 0.1
    assert loads("[daemon]\nsample_interval = 2\n").daemon.sample_interval == 2.0


# -- [defaults.limits] ------------------------------------------------------------------------


def test_defaults_limits_merge_key_by_key_with_a_programs(loads: Loads) -> None:
    cfg = loads("""
[defaults.limits]
memory = "256MiB"
open_files = 1024
cpu_percent = 80

[programs.a]
command = "sleep 1"

[programs.a.limits]
memory = "1GiB"
tasks = 32

[programs.b]
command = "sleep 1"
""")
    assert cfg.programs["a"].limits == LimitsConfig(memory=GiB, open_files=1024, cpu_percent=80.0, tasks=32)
    assert cfg.programs["b"].limits == LimitsConfig(memory=256 * MiB, open_files=1024, cpu_percent=80.0)


def test_defaults_limits_apply_to_a_program_without_a_limits_table(loads: Loads) -> None:
    cfg = loads('[defaults.limits]\ncore = 0\ncpu_window = "10s"\n' + PROGRAM)
    assert cfg.programs["a"].limits == LimitsConfig(core=0, cpu_window=10.0)


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (LIMITS + 'memroy = "64MiB"\n', "programs.a.limits.memroy: unknown key (did you mean 'memory'?)"),
        (LIMITS + "open_file = 64\n", "programs.a.limits.open_file: unknown key (did you mean 'open_files'?)"),
        (LIMITS + "zzz = 1\n", "programs.a.limits.zzz: unknown key"),
        ("[defaults.limits]\ncpu_procent = 5\n",
         "defaults.limits.cpu_procent: unknown key (did you mean 'cpu_percent'?)"),
        (LIMITS + 'memory = "5 parsecs"\n', f"programs.a.limits.memory: invalid size '5 parsecs' {SIZE_HINT}"),
        (LIMITS + 'memory = "512M"\n', f"programs.a.limits.memory: invalid size '512M' {SIZE_HINT}"),
        (LIMITS + "core = -1\n", f"programs.a.limits.core: invalid size -1 {SIZE_HINT}"),
        (LIMITS + 'cpu_window = "1 minute"\n',
         f"programs.a.limits.cpu_window: invalid duration '1 minute' {DURATION_HINT}"),
        (LIMITS + 'cpu_time = "x"\n', f"programs.a.limits.cpu_time: invalid duration 'x' {DURATION_HINT}"),
        (LIMITS + 'cpu_percent = "50%"\n', 'programs.a.limits.cpu_percent: expected a number, got "50%"'),
        (LIMITS + 'open_files = "many"\n', 'programs.a.limits.open_files: expected an integer, got "many"'),
        (LIMITS + "open_files = 15\n", "programs.a.limits.open_files: must be >= 16, got 15"),
        (LIMITS + "tasks = 0\n", "programs.a.limits.tasks: must be >= 1, got 0"),
        (LIMITS + 'cpu_window = "500ms"\n', 'programs.a.limits.cpu_window: must be between "1s" and "1h", got "500ms"'),
        (LIMITS + 'cpu_time = "0.5s"\n', 'programs.a.limits.cpu_time: must be between "1s" and "8760h", got "0.5s"'),
        ('[daemon]\nsample_interval = "50ms"\n',
         'daemon.sample_interval: must be between "100ms" and "1h", got "50ms"'),
        (PROGRAM + "limits = 5\n", None),
    ],
)
def test_errors(error: Error, text: str, message: str | None) -> None:
    got = error(text)
    if message is None:
        assert got.startswith("workers.toml: programs.a.limits"), got
    else:
        assert got == f"workers.toml: {message}"


@pytest.mark.parametrize("value", ["0", "0.0", "-5", str(100 * CORES + 1), str(100 * CORES + 0.5)])
def test_cpu_percent_must_be_positive_and_at_most_100_per_core(error: Error, value: str) -> None:
    assert error(LIMITS + f"cpu_percent = {value}\n") == (
        f"workers.toml: programs.a.limits.cpu_percent: must be > 0 and at most {100 * CORES} "
        f"(100 per core, {CORES} cores)"
    )


@pytest.mark.parametrize(
    ("line", "key", "minimum", "got"),
    [
        ('memory = "1MiB"', "memory", (4 * MiB, "4MiB"), (MiB, "1MiB")),
        ('memory = "4194303"', "memory", (4 * MiB, "4MiB"), (4 * MiB - 1, None)),
        ('address_space = "31MiB"', "address_space", (32 * MiB, "32MiB"), (31 * MiB, "31MiB")),
        ("address_space = 0", "address_space", (32 * MiB, "32MiB"), (0, "0B")),
    ],
)
def test_sizes_below_what_a_process_can_start_with(
    error: Error, line: str, key: str, minimum: tuple[int, str], got: tuple[int, str | None]
) -> None:
    """The exact line; the sizes may be spelled in bytes or in the unit a user writes."""
    message = error(LIMITS + line + "\n")
    in_bytes = f"workers.toml: programs.a.limits.{key}: must be >= {minimum[0]}, got {got[0]}"
    readable = f"workers.toml: programs.a.limits.{key}: must be >= {minimum[1]}, got {got[1] or got[0]}"
    assert message in (in_bytes, readable)


def test_an_error_in_defaults_limits_names_defaults(error: Error) -> None:
    assert error('[defaults.limits]\nmemory = "1KiB"\n' + PROGRAM).startswith(
        "workers.toml: defaults.limits.memory: must be >= "
    )


# -- workerd check ----------------------------------------------------------------------------


def check(path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKERD_")}
    return subprocess.run([sys.executable, "-m", "workerd", "check", "-c", str(path)], capture_output=True,
                          text=True, timeout=20, check=False, env=env, stdin=subprocess.DEVNULL)


def test_workerd_check_shows_each_programs_limits_and_the_enforcement(write: Callable[[str], Path]) -> None:
    path = write("""
[defaults.limits]
open_files = 1024

[programs.a]
command = "sleep 1"
nice = 5

[programs.a.limits]
memory = "512MiB"
cpu_percent = 95
cpu_window = "30s"
tasks = 64

[programs.b]
command = "sleep 2"

[programs.b.limits]
address_space = "4GiB"
core = 0
cpu_time = "1h"
file_size = "1GB"
""")
    result = check(path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    (a,) = [line for line in lines if line.strip().startswith("a:")]
    (b,) = [line for line in lines if line.strip().startswith("b:")]
    for text in ("nice=5", "memory=512MiB", "open_files=1024", "tasks=64", "cpu_percent=95 over 30s"):
        assert text in a, a
    for text in ("address_space=4GiB", "core=0B", "cpu_time=1h", "file_size=1GB", "open_files=1024"):
        assert text in b, b
    assert "memory" not in b and "cpu_percent" not in b
    (enforced,) = [line for line in lines if "limits enforced by" in line]
    assert enforced.strip().startswith("limits enforced by: rlimits + watcher"), enforced
    if not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        assert "no cgroup v2" in enforced, enforced


def test_workerd_check_without_limits_says_nothing_about_them(write: Callable[[str], Path]) -> None:
    result = check(write(PROGRAM))
    assert result.returncode == 0, result.stderr
    assert "limits" not in result.stdout
    assert "memory" not in result.stdout
