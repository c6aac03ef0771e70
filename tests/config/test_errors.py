"""One case per error class, with the exact line a user sees."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from workerd.config.load import ConfigError, load

Error = Callable[[str], str]
EMAIL = '[programs.email]\ncommand = "python -m app.worker"\n'
DURATION_HINT = '(use e.g. "250ms", "30s", "5m", "1h" or seconds)'
SIZE_HINT = '(use e.g. "512MiB", "1GB", "100KB" or a number of bytes)'


def test_missing_file(workdir: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load("workers.toml")
    assert str(caught.value) == "workers.toml: cannot read: [Errno 2] No such file or directory"


def test_directory_instead_of_file(workdir: Path) -> None:
    (workdir / "workers.toml").mkdir()
    with pytest.raises(ConfigError) as caught:
        load("workers.toml")
    assert str(caught.value) == "workers.toml: cannot read: [Errno 21] Is a directory"


def test_not_utf8(workdir: Path) -> None:
    (workdir / "workers.toml").write_bytes(b"# caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        load("workers.toml")
    assert str(caught.value) == "workers.toml: cannot read: not UTF-8 (byte 5)"


def test_syntax_error_has_line_and_column(error: Error) -> None:
    assert error("[daemon]\nsocket_mode 0600\n") == (
        "workers.toml:2:13: expected '=' after a key in a key/value pair"
    )


def test_syntax_error_at_end_of_document(error: Error) -> None:
    assert error("[daemon]\nlog_backups = [1,") == "workers.toml:2:18: invalid value"


def test_file_name_is_shown_as_given(workdir: Path) -> None:
    (workdir / "workers.toml").write_text("[daemon]\nlog_backups = -1\n")
    with pytest.raises(ConfigError) as caught:
        load(workdir / "workers.toml")
    assert str(caught.value) == f"{workdir}/workers.toml: daemon.log_backups: must be between 0 and 100, got -1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[program.email]\n", "program: unknown key (did you mean 'programs'?)"),
        ("[daemon]\nsockett = 'x'\n", "daemon.sockett: unknown key (did you mean 'socket'?)"),
        (
            EMAIL + "procceses = 2\n",
            "programs.email.procceses: unknown key (did you mean 'processes'?)",
        ),
        (EMAIL + "zzz = 2\n", "programs.email.zzz: unknown key"),
        (
            "[defaults]\nrestrat = 'never'\n",
            "defaults.restrat: unknown key (did you mean 'restart'?)",
        ),
    ],
)
def test_unknown_keys(error: Error, text: str, message: str) -> None:
    assert error(text) == f"workers.toml: {message}"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('processes = "two"', 'processes: expected an integer, got "two"'),
        ("processes = true", "processes: expected an integer, got true"),
        ("processes = 1.5", "processes: expected an integer, got 1.5"),
        ("shell = 'yes'", 'shell: expected true or false, got "yes"'),
        ("backoff_factor = '2'", 'backoff_factor: expected a number, got "2"'),
        ("backoff_factor = nan", "backoff_factor: expected a finite number, got nan"),
        ("stop_timeout = [30]", "stop_timeout: expected a duration, got an array"),
        ("directory = 5", "directory: expected a string, got 5"),
        ("directory = ''", "directory: must not be empty"),
        ('user = "a\\u0000b"', "user: must not contain a NUL character"),
        ("environment = 'A=1'", 'environment: expected a table of strings, got "A=1"'),
        (
            "restart = 'sometimes'",
            'restart: expected one of "always", "on-failure", "never", got "sometimes"',
        ),
    ],
)
def test_bad_types(error: Error, line: str, message: str) -> None:
    assert error(f"{EMAIL}{line}\n") == f"workers.toml: programs.email.{message}"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("processes = -1", "processes: must be >= 0, got -1"),
        ("max_restarts = -1", "max_restarts: must be >= 0, got -1"),
        ("backoff_factor = 0.5", "backoff_factor: must be between 1 and 10, got 0.5"),
        ("backoff_jitter = 1.0", "backoff_jitter: must be >= 0 and < 1, got 1.0"),
        ("backoff_jitter = -0.1", "backoff_jitter: must be >= 0 and < 1, got -0.1"),
        ("nice = 20", "nice: must be between -20 and 19, got 20"),
        ("nice = -21", "nice: must be between -20 and 19, got -21"),
        ("umask = '0999'", "umask: invalid mode '0999' (use an octal string like \"0600\")"),
        ("umask = 600", 'umask: must be at most 0777, got 1130 (write "0640", not 640)'),
        (
            "stop_signal = 'TREM'",
            "stop_signal: invalid signal 'TREM' (use a name like \"TERM\" or a number)",
        ),
        ("stop_signal = 0", 'stop_signal: invalid signal 0 (use a name like "TERM" or a number)'),
        (
            "stop_timeout = '5 minutes'",
            f"stop_timeout: invalid duration '5 minutes' {DURATION_HINT}",
        ),
        (
            "start_seconds = -1",
            f"start_seconds: invalid duration -1 {DURATION_HINT}",
        ),
    ],
)
def test_bad_values(error: Error, line: str, message: str) -> None:
    assert error(f"{EMAIL}{line}\n") == f"workers.toml: programs.email.{message}"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "log_max_bytes = '10k'",
            f"log_max_bytes: invalid size '10k' {SIZE_HINT}",
        ),
        ("log_max_bytes = 1", 'log_max_bytes: must be 0 (no rotation) or >= "64KiB", got 1'),
        ("max_load = -1", "max_load: must be >= 0, got -1"),
        (
            "socket_mode = 660",
            'socket_mode: must be at most 0777, got 1224 (write "0640", not 640)',
        ),
        ("socket_group = 'nogroupp'", "socket_group: no such group 'nogroupp'"),
        (
            "socket = '/" + "s" * 100 + "/workerd.sock'",
            "socket: too long for a Unix socket (114 bytes, at most 100)",
        ),
    ],
)
def test_bad_daemon_values(error: Error, line: str, message: str) -> None:
    assert error(f"[daemon]\n{line}\n") == f"workers.toml: daemon.{message}"


def test_relative_socket_too_long_once_resolved(error: Error, workdir: Path) -> None:
    """At most 100 bytes: the notify socket's path adds ".notify" to it, and sun_path holds 107."""
    name = "s" * (100 - len(str(workdir)))
    assert error(f"[daemon]\nsocket = '{name}'\n") == (
        "workers.toml: daemon.socket: too long for a Unix socket (101 bytes, at most 100)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("daemon = 5\n", "daemon: expected a table, got 5"),
        ("programs = 'email'\n", 'programs: expected a table, got "email"'),
        ("[programs]\nemail = 'python'\n", 'programs.email: expected a table, got "python"'),
        (
            '[programs."my worker"]\ncommand = "x"\n',
            "programs.\"my worker\": invalid program name (use letters, digits, '_', '.' and '-')",
        ),
        ("[programs.email]\nprocesses = 2\n", "programs.email: missing required key 'command'"),
        (
            '[programs.all]\ncommand = "x"\n',
            "programs.all: reserved name: `workerctl start all` means every program",
        ),
        (
            "[programs.x]\ncommand = 'x'\nprocesses = 1979-05-27\n",
            "programs.x.processes: expected an integer, got a date/time",
        ),
    ],
)
def test_bad_structure(error: Error, text: str, message: str) -> None:
    assert error(text) == f"workers.toml: {message}"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('command = ""', "empty command"),
        ('command = "   "', "empty command"),
        ("command = []", "empty command"),
        ('command = [""]', "empty command"),
        ("command = \"''\"", "empty command"),
        ('command = ["python", 3]', "an argv array must hold only strings (without NUL)"),
        ("command = 5", "expected a string or an array of strings, got 5"),
        ('command = "python -c \'print(1)"', "cannot split: no closing quotation"),
        ('command = ["echo", "hi"]\nshell = true', "with shell = true, command must be a string"),
    ],
)
def test_bad_commands(error: Error, lines: str, message: str) -> None:
    assert error(f"[programs.x]\n{lines}\n") == f"workers.toml: programs.x.command: {message}"


def test_no_such_user(error: Error) -> None:
    assert (
        error(EMAIL + "user = 'nobodyy'\n")
        == "workers.toml: programs.email.user: no such user 'nobodyy'"
    )


def test_no_such_group(error: Error) -> None:
    assert (
        error(EMAIL + "group = 'nogroupp'\n")
        == "workers.toml: programs.email.group: no such group 'nogroupp'"
    )


def test_error_from_defaults_names_defaults(error: Error) -> None:
    assert error("[defaults]\nuser = 'nobodyy'\n" + EMAIL) == (
        "workers.toml: defaults.user: no such user 'nobodyy'"
    )


def test_backoff_max_below_backoff_initial(error: Error) -> None:
    assert error(EMAIL + "backoff_initial = '10s'\nbackoff_max = '5s'\n") == (
        'workers.toml: programs.email.backoff_max: must be >= backoff_initial ("10s")'
    )
    assert error("[defaults]\nbackoff_max = '5s'\n" + EMAIL + "backoff_initial = '10s'\n") == (
        'workers.toml: defaults.backoff_max: must be >= backoff_initial ("10s")'
    )


def test_env_file_missing(error: Error, workdir: Path) -> None:
    assert error(EMAIL + "env_file = '.env'\n") == (
        f"workers.toml: programs.email.env_file: cannot read {workdir}/.env: "
        "[Errno 2] No such file or directory"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_env_file_unreadable(error: Error, workdir: Path) -> None:
    (workdir / ".env").write_text("A=1\n")
    (workdir / ".env").chmod(0)
    assert error(EMAIL + "env_file = '.env'\n") == (
        f"workers.toml: programs.email.env_file: cannot read {workdir}/.env: "
        "[Errno 13] Permission denied"
    )


def test_env_file_bad_line_names_file_and_line_not_the_secret(error: Error, workdir: Path) -> None:
    (workdir / ".env").write_text("# app\nDATABASE_URL=postgres://x\nsk_live_SECRET\n")
    message = error(EMAIL + "env_file = '.env'\n")
    assert message == f"workers.toml: programs.email.env_file: {workdir}/.env:3: expected KEY=VALUE"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("{ TOKEN = ['sk_live_SECRET'] }", "variable 'TOKEN': expected a string, got an array"),
        (
            "{ TOKEN = { a = 'sk_live_SECRET' } }",
            "variable 'TOKEN': expected a string, got a table",
        ),
        (
            '{ TOKEN = "sk_live_SECRET\\u0000" }',
            "variable 'TOKEN': must not contain a NUL character",
        ),
        ("{ 'A=B' = 'sk_live_SECRET' }", "invalid variable name 'A=B'"),
    ],
)
def test_environment_errors_never_show_values(error: Error, table: str, message: str) -> None:
    assert (
        error(f"{EMAIL}environment = {table}\n")
        == f"workers.toml: programs.email.environment: {message}"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (EMAIL + "watchdog = '5s'\n", 'programs.email.watchdog: needs ready = "notify" (the worker says it is '
                                        "alive on the notify socket)"),
        ("[defaults]\nwatchdog = '5s'\n" + EMAIL, 'defaults.watchdog: needs ready = "notify" (the worker says it is '
                                                 "alive on the notify socket)"),
        (
            "[daemon]\nmetrics = 'nohost'\n",
            'daemon.metrics: invalid address "nohost" (use "host:port")',
        ),
        (
            EMAIL + "ready = 'systemd'\n",
            'programs.email.ready: expected one of "uptime", "notify", got "systemd"',
        ),
    ],
)
def test_cross_key_and_address_errors(error: Error, text: str, message: str) -> None:
    assert error(text) == f"workers.toml: {message}"


def test_talking_to_workers_keys_load(write: Callable[[str], Path]) -> None:
    write(EMAIL + "ready = 'notify'\nwatchdog = '10s'\nrolling = true\nstart_timeout = '5s'\n")
    program = load("workers.toml").programs["email"]
    loaded = (program.ready.value, program.watchdog, program.rolling, program.start_timeout)
    assert loaded == ("notify", 10.0, True, 5.0)
