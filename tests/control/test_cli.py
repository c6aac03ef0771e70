"""Both command lines on click: parsing through click's own test runner, the one-line
errors and shell completion through the real commands."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import click
import pytest
from click.testing import CliRunner

from tests.runtime.conftest import WORKERCTL, Daemon
from workerd.cli import ctl_commands
from workerd.cli import workerd_commands as workerd
from workerd.cli.workerctl import plain_status
from workerd.cli.workerd import plain_start


def every_command(group: click.Group) -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += [(f"{name} {sub}", c) for sub, c in every_command(command)]
        else:
            found.append((name, command))
    return found


@pytest.mark.parametrize("group", [ctl_commands.cli, workerd.cli], ids=["workerctl", "workerd"])
def test_every_command_has_help_with_examples(group: click.Group) -> None:
    runner = CliRunner()
    for name, _ in every_command(group):
        result = runner.invoke(group, [*name.split(), "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Examples:" in result.output, name


@pytest.mark.parametrize("args, message", [
    (["scale", "w", "many"], "'many': a number >= 0 or 'auto'"),
    (["scale", "w", "-1"], "No such option '-1'"),
    (["scale", "w"], "Missing argument 'COUNT|auto'"),
    (["signal", "w"], "Missing argument 'SIGNAL'"),
    (["logs", "w", "-n", "x"], "'x' is not a valid integer"),
    (["start"], "Missing argument"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (["completion", "tcsh"], "'tcsh' is not one of"),
])
def test_workerctl_usage_errors_are_refused_before_any_request(args: list[str], message: str) -> None:
    result = CliRunner().invoke(ctl_commands.cli, args, standalone_mode=False)
    assert isinstance(result.exception, click.UsageError), result
    assert message in result.exception.format_message()


def test_a_usage_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from workerd.cli.workerctl import main

    with pytest.raises(SystemExit) as exited:
        main(["scale", "w"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == "workerctl: Missing argument 'COUNT|auto'. (see workerctl scale --help)\n"


@pytest.mark.parametrize("args, message", [
    (["check"], "Missing option '-c' / '--config'"),
    (["install-unit", "-c", "w.toml", "--name", "a b"], "not a unit name"),
    (["export", "kubernetes", "-c", "w.toml"], "Missing option '--image'"),
    (["export", "helm"], "No such command 'helm'"),
])
def test_workerd_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(workerd.cli, args, standalone_mode=False, env={"WORKERD_CONFIG": None})
    assert isinstance(result.exception, click.UsageError), result
    assert message in result.exception.format_message()


def test_workerd_config_comes_from_the_environment_too(tmp_path) -> None:
    config = tmp_path / "w.toml"
    config.write_text('[programs.w]\ncommand = "sleep 1"\n')
    result = CliRunner().invoke(workerd.cli, ["check"], env={"WORKERD_CONFIG": str(config)})
    assert result.exit_code == 0, result.output
    assert f"{config}: ok, 1 program(s)" in result.output


@pytest.mark.parametrize("shell, marker", [("bash", "complete -o nosort -F"), ("zsh", "#compdef workerctl"),
                                           ("fish", "complete --no-files --command workerctl")])
def test_completion_prints_the_shell_s_script(shell: str, marker: str) -> None:
    result = CliRunner().invoke(ctl_commands.cli, ["completion", shell])
    assert result.exit_code == 0
    assert marker in result.output and "_WORKERCTL_COMPLETE" in result.output


def complete(words: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """What bash's completion function asks workerctl for `words` (the last one being typed)."""
    parts = words.split(" ")
    return subprocess.run([WORKERCTL], capture_output=True, text=True, timeout=20, env={
        **(env or Daemon.env()), "COMP_WORDS": words, "COMP_CWORD": str(len(parts) - 1),
        "_WORKERCTL_COMPLETE": "bash_complete"})


def test_program_names_complete_from_the_running_daemon(daemon) -> None:
    d = daemon("""
        [programs.email]
        command = "sleep 1000"
        [programs.emails-bulk]
        command = "sleep 1000"
        [programs.reports]
        command = "sleep 1000"
    """)
    result = complete(f"workerctl -s {d.socket} restart em")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["plain,email", "plain,emails-bulk"]
    assert complete(f"workerctl -s {d.socket} stop a").stdout.splitlines() == ["plain,all"]
    assert complete(f"workerctl -s {d.socket} scale r").stdout.splitlines() == ["plain,reports"]
    assert complete(f"workerctl -s {d.socket} signal email U").stdout.splitlines() == ["plain,USR1", "plain,USR2"]


def test_completion_without_a_daemon_is_silent_and_quick(tmp_path) -> None:
    started = time.monotonic()
    result = complete(f"workerctl -s {tmp_path / 'none.sock'} restart em")
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "", "")
    assert time.monotonic() - started < 10  # generous: a Python start-up, no waiting on a daemon


def test_workerctl_status_imports_neither_click_nor_daemon_code() -> None:
    """What keeps `workerctl status` fast: its plain forms skip click's import."""
    probe = ("import json, sys\n"
             "sys.argv = ['workerctl', '-s', '/nonexistent/x.sock', 'status']\n"
             "from workerd.cli.workerctl import main\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "watched = ('workerd', 'asyncio', 'uvloop', 'click')\n"
             "print(json.dumps(sorted(m for m in sys.modules if m.startswith(watched))))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=20)
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == ["workerd", "workerd.cli", "workerd.cli.talk", "workerd.cli.workerctl", "workerd.control",
                      "workerd.control.client", "workerd.control.protocol"], loaded


def test_workerd_start_does_not_keep_click_in_the_daemon(tmp_path) -> None:
    """`workerd start -c FILE` is parsed by hand: click would stay resident in the daemon."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[programs.w]\n")
    probe = ("import json, sys\n"
             f"sys.argv = ['workerd', 'start', '-c', {str(bad)!r}]\n"
             "from workerd.cli.workerd import main\n"
             "try:\n    main()\nexcept SystemExit as exit:\n    code = exit.code\n"
             "print(json.dumps([code, 'click' in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=20)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [2, False], result.stderr
    assert result.stderr == f"workerd: {bad}: programs.w: missing required key 'command'\n"


@pytest.mark.parametrize("argv, expected", [
    (["start", "-c", "w.toml"], ("w.toml", False)),
    (["start", "--config=w.toml", "-v"], ("w.toml", True)),
    (["start", "--verbose", "--config", "w.toml"], ("w.toml", True)),
    (["start"], None), (["start", "-c"], None), (["start", "-c", "-v"], None), (["start", "-c", "a", "-c", "b"], None),
    (["start", "-c", "w.toml", "--help"], None), (["check", "-c", "w.toml"], None), ([], None),
])
def test_plain_start_forms(argv: list[str], expected: tuple[str, bool] | None) -> None:
    assert plain_start(argv) == expected


@pytest.mark.parametrize("argv, expected", [
    (["status"], {"socket": None, "config": None, "programs": [], "as_json": False}),
    (["-s", "/x.sock", "status", "a", "b", "--json"],
     {"socket": "/x.sock", "config": None, "programs": ["a", "b"], "as_json": True}),
    (["--config=w.toml", "status"], {"socket": None, "config": "w.toml", "programs": [], "as_json": False}),
    (["--config", "w.toml", "-s", "y", "status"],
     {"socket": "y", "config": "w.toml", "programs": [], "as_json": False}),
])
def test_plain_status_forms(argv: list[str], expected: dict) -> None:
    assert plain_status(argv) == expected


@pytest.mark.parametrize("argv", [[], ["start", "a"], ["status", "--help"], ["status", "-x"], ["-s"], ["-s", "status"],
                                  ["--socket=", "status"], ["-v", "status"], ["-sX", "status"]])
def test_everything_else_goes_to_click(argv: list[str]) -> None:
    assert plain_status(argv) is None


def test_both_paths_answer_status_alike(daemon) -> None:
    d = daemon("""
        [programs.w]
        command = "sleep 1000"
        processes = 2
    """)
    d.wait_running("w", 2)
    for args in (["status"], ["status", "--json"], ["status", "w"], ["status", "nope"]):
        fast = subprocess.run([WORKERCTL, "-s", str(d.socket), *args], capture_output=True, text=True, timeout=20,
                              env=Daemon.env())
        # `-s` attached to its value is not a plain form: click answers this one
        clicked = subprocess.run([WORKERCTL, f"-s{d.socket}", *args], capture_output=True, text=True, timeout=20,
                                 env=Daemon.env())
        assert fast.returncode == clicked.returncode, args
        assert fast.stderr == clicked.stderr, args
        if "--json" in args:  # uptimes move between the two calls
            assert json.loads(fast.stdout).keys() == json.loads(clicked.stdout).keys()
        else:
            assert [line.split()[:4] for line in fast.stdout.splitlines()] == \
                [line.split()[:4] for line in clicked.stdout.splitlines()], args
    missing = subprocess.run([WORKERCTL, "-s", "/nonexistent/w.sock", "status"], capture_output=True, text=True,
                             timeout=20)
    assert (missing.returncode, missing.stderr) == (3, "workerctl: no daemon answers at /nonexistent/w.sock\n")
