"""`[programs.NAME.autoscale]`: parsing into AutoscaleConfig, the exact error lines of
each bad input, and what `workerd check` says about an autoscaled program.

(A reload with an invalid [autoscale] keeping the running config is in
tests/runtime/test_autoscale.py: it needs a daemon.)"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.config.conftest import InstalledClients
from workerd.cli.workerd import main as workerd_main
from workerd.config.model import AutoscaleConfig, Config, RedisFormat, Source
from workerd.config.source_rules import client_installed as real_client_installed  # before any stand-in

Loads = Callable[[str], Config]
Error = Callable[[str], str]

PROGRAM = '[programs.w]\ncommand = "sleep 1"\n'
AUTO = PROGRAM + "[programs.w.autoscale]\n"
SQLITE = AUTO + 'source = "sqlite"\npath = "queue.db"\nquery = "SELECT count(*) FROM jobs"\n'
REDIS = AUTO + 'source = "redis"\nkeys = ["email"]\n'
PREFIX = "workers.toml: programs.w.autoscale"


def autoscale_of(loads: Loads, text: str) -> AutoscaleConfig:
    auto = loads(text).programs["w"].autoscale
    assert auto is not None
    return auto


# -- parsing ------------------------------------------------------------------------------


def test_no_autoscale_table_is_a_fixed_count(loads: Loads) -> None:
    assert loads(PROGRAM).programs["w"].autoscale is None


def test_sqlite_parses_with_the_defaults(loads: Loads, workdir: Path) -> None:
    auto = autoscale_of(loads, SQLITE)
    assert auto.source is Source.SQLITE
    assert auto.path == workdir / "queue.db"          # relative to the config file
    assert auto.path.is_absolute()
    assert auto.query == "SELECT count(*) FROM jobs"
    assert (auto.min, auto.max, auto.per_worker) == (1, 8, 20)
    assert (auto.interval, auto.scale_down_delay) == (2.0, 60.0)
    assert (auto.timeout, auto.max_age) == (2.0, None)    # timeout unset: the interval
    assert (auto.url, auto.keys, auto.format, auto.queue) == (None, None, None, None)


def test_an_unset_timeout_is_the_interval_wherever_the_interval_is_set(loads: Loads) -> None:
    assert autoscale_of(loads, SQLITE + 'interval = "5s"\n').timeout == 5.0
    text = '[defaults.autoscale]\ninterval = "7s"\n' + SQLITE
    assert autoscale_of(loads, text).timeout == 7.0


def test_a_relative_sqlite_path_is_relative_to_the_file_not_the_cwd(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from workerd.config.load import load

    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "w.toml").write_text(SQLITE.replace('"queue.db"', '"data/queue.db"'))
    monkeypatch.chdir(tmp_path)
    auto = load("etc/w.toml").programs["w"].autoscale
    assert auto is not None and auto.path == (conf / "data" / "queue.db").absolute()


def test_an_absolute_sqlite_path_stays(loads: Loads) -> None:
    auto = autoscale_of(loads, SQLITE.replace('"queue.db"', '"/var/lib/app/queue.db"'))
    assert auto.path == Path("/var/lib/app/queue.db")


def test_every_common_key_parses(loads: Loads) -> None:
    auto = autoscale_of(loads, SQLITE + """
min = 0
max = 12
per_worker = 5
interval = "250ms"
scale_down_delay = "2m"
timeout = "1s"
max_age = "30s"
""")
    assert (auto.min, auto.max, auto.per_worker) == (0, 12, 5)
    assert (auto.interval, auto.scale_down_delay, auto.timeout, auto.max_age) == (0.25, 120.0, 1.0, 30.0)


def test_redis_keys_parse(loads: Loads) -> None:
    auto = autoscale_of(loads, AUTO + 'source = "redis"\nurl = "redis://127.0.0.1:6380/2"\nkeys = ["a", "b"]\n')
    assert auto.source is Source.REDIS
    assert auto.url == "redis://127.0.0.1:6380/2"
    assert auto.keys == ("a", "b")
    assert (auto.format, auto.queue, auto.path, auto.query) == (None, None, None, None)


def test_redis_url_defaults_to_unset(loads: Loads) -> None:
    assert autoscale_of(loads, REDIS).url is None   # the source then uses redis://127.0.0.1:6379/0


@pytest.mark.parametrize("library", [f.value for f in RedisFormat])
def test_each_redis_format_parses_with_its_queue(loads: Loads, library: str) -> None:
    auto = autoscale_of(loads, AUTO + f'source = "redis"\nformat = "{library}"\nqueue = "default"\n')
    assert auto.format is RedisFormat(library)
    assert auto.queue == "default"
    assert auto.keys is None


def test_the_six_documented_formats_exist() -> None:
    assert {f.value for f in RedisFormat} >= {"celery", "rq", "bullmq", "dramatiq", "arq", "sidekiq"}


def test_processes_is_ignored_next_to_autoscale(loads: Loads) -> None:
    program = loads(SQLITE.replace('command = "sleep 1"\n', 'command = "sleep 1"\nprocesses = 4\n')).programs["w"]
    assert program.autoscale is not None and program.autoscale.min == 1


# -- errors: one line each, with the key path ------------------------------------------------------


def test_missing_source(error: Error) -> None:
    assert error(AUTO + "min = 1\n") == f"{PREFIX}: missing required key 'source'"


def test_an_empty_autoscale_table_needs_a_source(error: Error) -> None:
    assert error(AUTO) == f"{PREFIX}: missing required key 'source'"


def test_unknown_source(error: Error) -> None:
    choices = ", ".join(f'"{s.value}"' for s in Source)
    assert error(AUTO + 'source = "kafka"\n') == f'{PREFIX}.source: expected one of {choices}, got "kafka"'


def test_min_above_max(error: Error) -> None:
    assert error(SQLITE + "min = 5\nmax = 2\n") == f"{PREFIX}.max: must be >= min (5)"


def test_min_equal_to_max_is_fine(loads: Loads) -> None:
    auto = autoscale_of(loads, SQLITE + "min = 3\nmax = 3\n")
    assert (auto.min, auto.max) == (3, 3)


@pytest.mark.parametrize("value", ["0", "-1"])
def test_per_worker_must_be_positive(error: Error, value: str) -> None:
    assert error(SQLITE + f"per_worker = {value}\n") == f"{PREFIX}.per_worker: must be >= 1, got {value}"


def test_per_worker_must_be_an_integer(error: Error) -> None:
    assert error(SQLITE + "per_worker = 2.5\n").startswith(f"{PREFIX}.per_worker: ")


def test_negative_min(error: Error) -> None:
    assert error(SQLITE + "min = -1\n") == f"{PREFIX}.min: must be >= 0, got -1"


def test_max_zero(error: Error) -> None:
    assert error(SQLITE + "min = 0\nmax = 0\n") == f"{PREFIX}.max: must be >= 1, got 0"


def test_interval_too_short(error: Error) -> None:
    assert error(SQLITE + 'interval = "0s"\n') == f'{PREFIX}.interval: must be between "100ms" and "1h", got "0s"'


def test_a_bad_duration(error: Error) -> None:
    assert error(SQLITE + 'scale_down_delay = "soon"\n').startswith(f"{PREFIX}.scale_down_delay: invalid duration")


def test_a_misspelt_key_gets_a_suggestion(error: Error) -> None:
    assert error(SQLITE + "per_workr = 3\n") == f"{PREFIX}.per_workr: unknown key (did you mean 'per_worker'?)"


@pytest.mark.parametrize(("extra", "key"), [
    ('keys = ["a"]\n', "keys"),
    ('url = "redis://127.0.0.1:6379/0"\n', "url"),
    ('format = "rq"\n', "format"),
    ('queue = "default"\n', "queue"),
])
def test_a_key_the_sqlite_source_does_not_use(error: Error, extra: str, key: str) -> None:
    assert error(SQLITE + extra) == f"{PREFIX}.{key}: not used by source 'sqlite'"


@pytest.mark.parametrize(("extra", "key"), [
    ('path = "q.db"\n', "path"),
    ('query = "SELECT 1"\n', "query"),
])
def test_a_key_the_redis_source_does_not_use(error: Error, extra: str, key: str) -> None:
    assert error(REDIS + extra) == f"{PREFIX}.{key}: not used by source 'redis'"


def test_redis_with_neither_keys_nor_format(error: Error) -> None:
    assert error(AUTO + 'source = "redis"\n') == f"{PREFIX}.keys: give either keys or format (with queue)"


def test_redis_with_both_keys_and_format(error: Error) -> None:
    assert (error(REDIS + 'format = "rq"\nqueue = "default"\n')
            == f"{PREFIX}.keys: give either keys or format (with queue)")


def test_redis_format_without_queue(error: Error) -> None:
    assert (error(AUTO + 'source = "redis"\nformat = "rq"\n')
            == f"{PREFIX}.format: needs queue (the job library's queue name)")


def test_redis_queue_without_format_is_not_silently_ignored(error: Error) -> None:
    """`queue` only means something with `format`; next to `keys` it would be silently
    ignored, so a user who wrote `keys = [...]` and `queue = "..."` expecting both to be
    read would never know. Unknown or unused keys are errors everywhere else."""
    assert error(REDIS + 'queue = "default"\n').startswith(f"{PREFIX}.queue: ")


def test_unknown_redis_format(error: Error) -> None:
    choices = ", ".join(f'"{f.value}"' for f in RedisFormat)
    assert (error(AUTO + 'source = "redis"\nformat = "resque"\nqueue = "q"\n')
            == f'{PREFIX}.format: expected one of {choices}, got "resque"')


def test_redis_keys_must_be_a_non_empty_array_of_strings(error: Error) -> None:
    assert error(AUTO + 'source = "redis"\nkeys = "email"\n').startswith(f"{PREFIX}.keys: expected a non-empty array")
    assert error(AUTO + 'source = "redis"\nkeys = []\n').startswith(f"{PREFIX}.keys: expected a non-empty array")


def test_sqlite_without_path(error: Error) -> None:
    assert (error(AUTO + 'source = "sqlite"\nquery = "SELECT 1"\n')
            == f"{PREFIX}.source: source 'sqlite' needs path")


def test_sqlite_without_query(error: Error) -> None:
    assert error(AUTO + 'source = "sqlite"\npath = "q.db"\n') == f"{PREFIX}.source: source 'sqlite' needs query"


def test_a_source_whose_client_is_not_installed_names_the_extra(error: Error,
                                                              installed_clients: InstalledClients) -> None:
    installed_clients("psycopg")
    assert (error(REDIS) ==
            f"{PREFIX}.source: the redis client is not installed: pip install 'workerd[redis]'")


def test_the_sqlite_source_needs_no_extra(loads: Loads, installed_clients: InstalledClients) -> None:
    installed_clients()
    assert autoscale_of(loads, SQLITE).source is Source.SQLITE


def test_a_client_is_installed_when_it_can_be_imported() -> None:
    """The real check, which the fixture stands in for in the other tests."""
    assert real_client_installed("sqlite3")
    assert not real_client_installed("workerd_no_such_client")


# -- workerd check ----------------------------------------------------------------------------


def check(path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKERD_")}
    return subprocess.run([sys.executable, "-m", "workerd", "check", "-c", str(path)], capture_output=True,
                          text=True, timeout=20, check=False, env=env, stdin=subprocess.DEVNULL)


def test_workerd_check_shows_the_range_and_the_source(write: Callable[[str], Path]) -> None:
    path = write(SQLITE + "min = 0\nmax = 5\nper_worker = 10\n"
                 + '\n[programs.f]\ncommand = "sleep 2"\nprocesses = 3\n')
    result = check(path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    (w,) = [line for line in lines if line.strip().startswith("w:")]
    (f,) = [line for line in lines if line.strip().startswith("f:")]
    assert w.strip().startswith("w: 0..5 × sleep 1 ("), w
    assert "autoscale on sqlite" in w, w
    assert "10 jobs per process" in w, w
    assert f.strip().startswith("f: 3 × sleep 2 ("), f
    assert "autoscale" not in f


def test_workerd_check_shows_a_redis_program(write: Callable[[str], Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """In this process, where the redis client counts as installed (see conftest)."""
    path = write(AUTO + 'source = "redis"\nformat = "rq"\nqueue = "default"\nmax = 4\n')
    with pytest.raises(SystemExit) as exited:
        workerd_main(["check", "-c", str(path)])
    assert exited.value.code == 0
    (w,) = [line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("w:")]
    assert w.strip().startswith("w: 1..4 × sleep 1 (") and "autoscale on redis" in w, w


def test_workerd_check_refuses_a_bad_autoscale_with_one_line_and_exit_2(write: Callable[[str], Path]) -> None:
    result = check(write(SQLITE + "min = 5\nmax = 2\n"))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].endswith("workers.toml: programs.w.autoscale.max: must be >= min (5)"), lines[0]
