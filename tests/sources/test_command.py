"""The `command` source: a shell-free command that prints a number or JSON.

Run with both Launchers: the tests' own (pidfd) and the daemon's (spawn.py + the
SIGCHLD Reaper), so the one the daemon uses is the one tested.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.sources.services import (
    PREFIX,
    PidfdLauncher,
    config_error,
    load_autoscale,
    read,
    reaper_installed,
    run,
    timed,
    until_gone,
)
from workerd.config.model import Source as SourceKind
from workerd.core.scaling import QueueReading
from workerd.sources.base import SourceError
from workerd.sources.command import CommandSource, parse_output
from workerd.sources.factory import make_source

PY = sys.executable


def with_launcher(kind: str, body: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run body(launcher) on uvloop with the tests' or the daemon's launcher."""

    async def main() -> Any:
        if kind == "pidfd":
            return await body(PidfdLauncher())
        with reaper_installed(asyncio.get_running_loop()) as harness:
            return await body(harness.launcher)

    return run(main())


LAUNCHERS = pytest.mark.parametrize("kind", ["pidfd", "reaper"])


def py(code: str) -> list[str]:
    return [PY, "-c", code]


@LAUNCHERS
def test_a_number(kind: str) -> None:
    async def body(launcher: Any) -> QueueReading:
        return await read(CommandSource(py("print(0)"), 5, launcher))

    assert with_launcher(kind, body) == QueueReading(0)


@LAUNCHERS
def test_n_jobs_read_again_and_again(kind: str, tmp_path: Path) -> None:
    queue = tmp_path / "depth"

    async def body(launcher: Any) -> list[QueueReading]:
        source = CommandSource(["cat", str(queue)], 5, launcher)
        readings = []
        for n in (0, 7, 12):
            queue.write_text(f"{n}\n")
            readings.append(await read(source))
        await source.close()
        return readings

    assert with_launcher(kind, body) == [QueueReading(0), QueueReading(7), QueueReading(12)]


@LAUNCHERS
def test_json_with_depth_and_age(kind: str) -> None:
    async def body(launcher: Any) -> QueueReading:
        return await read(CommandSource(py('print(\'{"depth": 42, "age": 3.5}\')'), 5, launcher))

    assert with_launcher(kind, body) == QueueReading(42, 3.5)


def test_the_argv_is_not_run_by_a_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`$(...)`, `;` and `*` reach the command as they are."""
    config = load_autoscale(tmp_path, "source = \"command\"\ncommand = \"echo 5 ';' $(touch x) *\"\n")
    assert config.command == ("echo", "5", ";", "$(touch", "x)", "*")

    async def body(launcher: Any) -> Any:
        return await timed(read(make_source(config, launcher)))

    result, _ = with_launcher("pidfd", body)
    assert isinstance(result, SourceError)
    assert "expected a number or JSON, got '5 ; $(touch x) *'" in str(result)
    assert not (tmp_path / "x)").exists() and not Path("x)").exists()


@pytest.mark.parametrize(("output", "why"), [
    (b"", "printed nothing"),
    (b"twelve\n", "expected a number or JSON, got 'twelve'"),
    (b"-3\n", "negative depth -3"),
    (b'"7"\n', "not a number: '7'"),
    (b"true\n", "not a number: True"),
    (b"NaN\n", "not a number: nan"),
    (b"Infinity\n", "not a number: inf"),
    (b'{"jobs": 3}\n', 'the JSON has no "depth"'),
    (b'{"depth": 3, "age": -1}\n', "not an age in seconds: -1"),
    (b'{"depth": 3, "age": "old"}\n', "not an age in seconds: 'old'"),
    (b"[1, 2]\n", "not a number: [1, 2]"),
])
def test_garbage_is_a_source_error(output: bytes, why: str) -> None:
    with pytest.raises(SourceError) as caught:
        parse_output(output, "command probe")
    assert str(caught.value).startswith("command probe: ")
    assert why in str(caught.value)


@LAUNCHERS
def test_garbage_from_a_real_command(kind: str) -> None:
    async def body(launcher: Any) -> Any:
        return await timed(read(CommandSource(py("print('lots')"), 5, launcher)))

    result, _ = with_launcher(kind, body)
    assert isinstance(result, SourceError)
    assert str(result) == f"command {PY}: expected a number or JSON, got 'lots'"


@LAUNCHERS
def test_a_failing_command_quotes_its_stderr(kind: str) -> None:
    code = "import sys; print('3'); print('warming up', file=sys.stderr); sys.exit('queue service down')"

    async def body(launcher: Any) -> Any:
        return await timed(read(CommandSource(py(code), 5, launcher)))

    result, _ = with_launcher(kind, body)
    assert isinstance(result, SourceError)
    assert str(result) == f"command {PY}: exit status 1: queue service down"


@LAUNCHERS
def test_a_command_killed_by_a_signal(kind: str) -> None:
    async def body(launcher: Any) -> Any:
        return await timed(read(CommandSource(py("import os; os.kill(os.getpid(), 9)"), 5, launcher)))

    result, _ = with_launcher(kind, body)
    assert str(result) == f"command {PY}: killed by SIGKILL"


@LAUNCHERS
def test_a_command_that_does_not_exist(kind: str, tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-probe")

    async def body(launcher: Any) -> Any:
        return await timed(read(CommandSource([missing], 5, launcher)))

    result, took = with_launcher(kind, body)
    assert isinstance(result, SourceError)
    assert str(result).startswith(f"command {missing}: exec {missing}: ")
    assert took < 2


@LAUNCHERS
def test_a_slow_command_is_killed_with_its_whole_group(kind: str, tmp_path: Path) -> None:
    """The command and the grandchild it started are gone once the timeout passed."""
    pids = tmp_path / "pids"
    code = (f"import os, subprocess, time; p = subprocess.Popen(['sleep', '60']); "
            f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{p.pid}}'); time.sleep(60)")

    async def body(launcher: Any) -> Any:
        result = await timed(read(CommandSource(py(code), 1.0, launcher)))
        gone = [await until_gone(int(pid)) for pid in pids.read_text().split()]
        return result, gone

    (result, took), gone = with_launcher(kind, body)
    assert isinstance(result, SourceError)
    assert str(result) == f"command {PY}: no answer in 1s (killed)"
    assert 0.9 < took < 3
    assert gone == [True, True]


@LAUNCHERS
def test_a_cancelled_reading_kills_the_command(kind: str, tmp_path: Path) -> None:
    """The autoscaler's own timeout (wait_for) cancels the reading: the child goes too."""
    pidfile = tmp_path / "pid"
    code = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)"

    async def body(launcher: Any) -> Any:
        source = CommandSource(py(code), 30, launcher)
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(source.read(), 1.0)
        took = time.monotonic() - started
        return took, await until_gone(int(pidfile.read_text()))

    took, gone = with_launcher(kind, body)
    assert took < 3
    assert gone


@LAUNCHERS
def test_a_command_that_closes_stdout_and_lingers_is_bounded(kind: str) -> None:
    code = "import os, time; print(4, flush=True); os.close(1); time.sleep(60)"

    async def body(launcher: Any) -> Any:
        return await timed(read(CommandSource(py(code), 1.0, launcher)))

    result, took = with_launcher(kind, body)
    assert str(result) == f"command {PY}: no answer in 1s (killed)"
    assert took < 3


@LAUNCHERS
def test_endless_output_is_refused(kind: str) -> None:
    code = "import sys; sys.stdout.write('1' * 200000)"

    async def body(launcher: Any) -> Any:
        return await timed(read(CommandSource(py(code), 5, launcher)))

    result, _ = with_launcher(kind, body)
    assert str(result) == f"command {PY}: printed more than 64 KiB"


def test_the_daemons_launcher_leaves_no_zombie() -> None:
    """Every child the daemon's launcher started was reaped by the Reaper: none is still
    watched (a zombie would be: its exit was never collected)."""

    async def main() -> int:
        with reaper_installed(asyncio.get_running_loop()) as harness:
            source = CommandSource(py("print(1)"), 5, harness.launcher)
            for _ in range(5):
                assert await read(source) == QueueReading(1)
            deadline = time.monotonic() + 5
            while harness.reaper.watched and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            return int(harness.reaper.watched)

    assert run(main()) == 0


# -- config --------------------------------------------------------------------------------


def test_config_a_string_is_split_like_a_shell_would(tmp_path: Path) -> None:
    config = load_autoscale(tmp_path, 'source = "command"\ncommand = "probe --queue \'my queue\'"\ntimeout = "3s"\n')
    assert config.source is SourceKind.COMMAND
    assert (config.command, config.timeout) == (("probe", "--queue", "my queue"), 3.0)


def test_config_an_array_is_taken_as_it_is(tmp_path: Path) -> None:
    config = load_autoscale(tmp_path, 'source = "command"\ncommand = ["probe", "a b"]\n')
    assert config.command == ("probe", "a b")


@pytest.mark.parametrize(("body", "message"), [
    ('source = "command"\n', f"{PREFIX}.source: source 'command' needs command"),
    ('source = "command"\ncommand = "probe \'x"\n', f"{PREFIX}.command: cannot split: no closing quotation"),
    ('source = "command"\ncommand = ""\n', f"{PREFIX}.command: empty command"),
    ('source = "command"\ncommand = []\n', f"{PREFIX}.command: empty command"),
    ('source = "command"\ncommand = 3\n', f"{PREFIX}.command: expected a string or an array of strings, got 3"),
    ('source = "command"\ncommand = "p"\nurl = "http://x"\n', f"{PREFIX}.url: not used by source 'command'"),
    ('source = "redis"\nkeys = ["q"]\ncommand = "p"\n', f"{PREFIX}.command: not used by source 'redis'"),
])
def test_config_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, message: str) -> None:
    assert config_error(tmp_path, body, monkeypatch) == message
