from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Callable
from pathlib import Path

import pytest

from workerd.config.load import load
from workerd.config.model import Config, Readiness
from workerd.config.summary import summarize
from workerd.control.protocol import default_socket as default_socket_path
from workerd.core.states import RestartPolicy

Loads = Callable[[str], Config]
ME = pwd.getpwuid(os.getuid())
OTHER_GROUP = next((g for g in grp.getgrall() if g.gr_gid != ME.pw_gid), None)


def test_empty_file_is_a_daemon_without_programs(loads: Loads, workdir: Path) -> None:
    cfg = loads("")
    assert cfg.path == workdir / "workers.toml"
    assert cfg.programs == {}
    assert cfg.daemon.socket == Path(default_socket_path())
    assert cfg.daemon.socket_mode == 0o600
    assert cfg.daemon.log_dir is None


def test_empty_programs_table(loads: Loads) -> None:
    assert loads("[daemon]\n[defaults]\n[programs]\n").programs == {}


def test_path_is_absolute_whatever_the_working_directory(write: Callable[[str], Path]) -> None:
    path = write("")
    assert load(str(path)).path == path
    assert load(Path("workers.toml")).path == path


def test_spec_example_values(loads: Loads) -> None:
    cfg = loads(
        f"""
[daemon]
socket = "/run/w/w.sock"
socket_mode = "0660"
socket_group = "{grp.getgrgid(ME.pw_gid).gr_name}"
log_dir = "/var/log/workerd"
log_max_bytes = "50MiB"
log_backups = 5
shutdown_timeout = "60s"
reserve_memory = "512MiB"
max_load = 0.9

[programs.email]
command = "python -m app.worker --queue 'email high'"
directory = "/srv/app"
user = "{ME.pw_name}"
umask = "022"
environment = {{ QUEUE = "email", WORKERS = 4, RATIO = 0.5, DEBUG = true }}
processes = 2
restart = "on-failure"
start_seconds = "1s"
backoff_initial = "500ms"
backoff_factor = 3
backoff_max = "5m"
backoff_jitter = 0.25
backoff_reset = "10m"
max_restarts = 3
stop_signal = "INT"
stop_timeout = "30s"
nice = 5
ready = "uptime"
start_timeout = "2m"
watchdog = "0s"
rolling = false
"""
    )
    daemon = cfg.daemon
    assert daemon.socket == Path("/run/w/w.sock")
    assert (daemon.socket_mode, daemon.socket_gid) == (0o660, ME.pw_gid)
    assert daemon.log_dir == Path("/var/log/workerd")
    assert (daemon.log_max_bytes, daemon.reserve_memory) == (50 << 20, 512 << 20)
    assert (daemon.shutdown_timeout, daemon.max_load, daemon.metrics) == (60.0, 0.9, None)
    email = cfg.programs["email"]
    assert email.name == "email"
    assert email.command == ("python", "-m", "app.worker", "--queue", "email high")
    assert email.directory == Path("/srv/app")
    assert (email.user, email.uid, email.gid, email.group) == (
        ME.pw_name,
        ME.pw_uid,
        ME.pw_gid,
        None,
    )
    assert email.umask == 0o22
    assert email.environment == {"QUEUE": "email", "WORKERS": "4", "RATIO": "0.5", "DEBUG": "true"}
    assert (email.processes, email.restart) == (2, RestartPolicy.ON_FAILURE)
    assert (email.start_seconds, email.backoff_initial, email.backoff_factor) == (1.0, 0.5, 3.0)
    assert (email.backoff_max, email.backoff_jitter, email.backoff_reset) == (300.0, 0.25, 600.0)
    assert (email.max_restarts, email.stop_signal, email.stop_timeout) == (3, 2, 30.0)
    assert (email.nice, email.ready, email.start_timeout) == (5, Readiness.UPTIME, 120.0)
    assert (email.watchdog, email.rolling) == (0.0, False)


def test_program_defaults(loads: Loads) -> None:
    program = loads('[programs.a]\ncommand = "sleep 1"\n').programs["a"]
    assert program.command == ("sleep", "1")
    assert (program.processes, program.nice, program.shell, program.environment) == (
        1,
        0,
        False,
        {},
    )
    assert (program.user, program.uid, program.gid, program.umask) == (None, None, None, None)


def test_command_as_argv_array(loads: Loads) -> None:
    program = loads('[programs.a]\ncommand = ["echo", "a b", "$HOME"]\n').programs["a"]
    assert program.command == ("echo", "a b", "$HOME")


def test_shell_command(loads: Loads) -> None:
    program = loads('[programs.a]\ncommand = "echo $HOME | wc"\nshell = true\n').programs["a"]
    assert program.command == ("/bin/sh", "-c", "echo $HOME | wc")


@pytest.mark.skipif(OTHER_GROUP is None, reason="needs a second group")
def test_group_overrides_the_users_primary_group(loads: Loads) -> None:
    assert OTHER_GROUP is not None
    program = loads(
        f'[programs.a]\ncommand = "true"\nuser = "{ME.pw_name}"\ngroup = "{OTHER_GROUP.gr_name}"\n'
    ).programs["a"]
    assert (program.uid, program.gid, program.group) == (
        ME.pw_uid,
        OTHER_GROUP.gr_gid,
        OTHER_GROUP.gr_name,
    )


def test_group_without_user(loads: Loads) -> None:
    name = grp.getgrgid(ME.pw_gid).gr_name
    program = loads(f'[programs.a]\ncommand = "true"\ngroup = "{name}"\n').programs["a"]
    assert (program.uid, program.gid) == (None, ME.pw_gid)


def test_defaults_then_program(loads: Loads) -> None:
    cfg = loads(
        """
[defaults]
processes = 3
nice = 5
stop_signal = "QUIT"
environment = { A = "from defaults", B = "from defaults" }

[programs.a]
command = "true"
nice = 10
environment = { B = "from a", C = "from a" }

[programs.b]
command = "true"
"""
    )
    a, b = cfg.programs["a"], cfg.programs["b"]
    assert (a.processes, a.nice, a.stop_signal) == (3, 10, 3)
    assert a.environment == {"A": "from defaults", "B": "from a", "C": "from a"}
    assert (b.processes, b.nice) == (3, 5)
    assert b.environment == {"A": "from defaults", "B": "from defaults"}


def test_relative_paths_are_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    (config_dir / "app.env").write_text("FROM_FILE=1\n")
    (config_dir / "workers.toml").write_text(
        """
[daemon]
socket = "run/workerd.sock"
log_dir = "logs"

[programs.a]
command = "true"
directory = "../srv"
env_file = "app.env"
"""
    )
    monkeypatch.chdir(tmp_path)
    cfg = load("etc/workers.toml")
    assert cfg.daemon.socket == tmp_path / "etc" / "run" / "workerd.sock"
    assert cfg.daemon.log_dir == tmp_path / "etc" / "logs"
    assert cfg.programs["a"].directory == tmp_path / "etc" / ".." / "srv"
    assert cfg.programs["a"].env_file == tmp_path / "etc" / "app.env"
    assert cfg.programs["a"].environment == {"FROM_FILE": "1"}


def test_environment_table_overrides_env_file(loads: Loads, workdir: Path) -> None:
    (workdir / ".env").write_text("export A='file'\nB=\"file\"\n# c\n")
    program = loads(
        '[programs.a]\ncommand = "true"\nenv_file = ".env"\nenvironment = { B = "table" }\n'
    ).programs["a"]
    assert program.environment == {"A": "file", "B": "table"}


def test_programs_keep_file_order_and_names_may_hold_dots(loads: Loads) -> None:
    cfg = loads(
        '[programs.z]\ncommand = "true"\n[programs."app.v2"]\ncommand = "true"\n'
        '[programs.a-1_b]\ncommand = "true"\n'
    )
    assert list(cfg.programs) == ["z", "app.v2", "a-1_b"]


def test_config_is_immutable(loads: Loads) -> None:
    cfg = loads('[programs.a]\ncommand = "true"\nenvironment = { A = "1" }\n')
    with pytest.raises(TypeError):
        cfg.programs["b"] = cfg.programs["a"]  # type: ignore[index]
    with pytest.raises(TypeError):
        cfg.programs["a"].environment["A"] = "2"  # type: ignore[index]


def test_loading_twice_gives_equal_configs(loads: Loads) -> None:
    """Reload compares ProgramConfigs to find changed programs."""
    text = '[programs.a]\ncommand = "true"\nenvironment = { A = "1" }\n'
    assert loads(text) == loads(text)


def test_summarize(loads: Loads) -> None:
    cfg = loads(
        f"""
[programs.email]
command = "python -m app.worker --queue email"
processes = 2
user = "{ME.pw_name}"

[programs.cron]
command = "run-parts /etc/app.d && echo 'done'"
shell = true
restart = "never"
"""
    )
    assert summarize(cfg) == [
        f"email: 2 × python -m app.worker --queue email (restart=always, user={ME.pw_name})",
        "cron: 1 × run-parts /etc/app.d && echo 'done' (shell, restart=never)",
    ]
