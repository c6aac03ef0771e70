"""workerctl's commands on click (the entry point is workerctl.py).

Program names complete from the running daemon (`workerctl restart em<TAB>`); with no
daemon there, completion offers nothing, at once.
"""

from __future__ import annotations

import sys

import click

from workerd.cli.clicking import CONTEXT, examples
from workerd.cli.talk import ask, show_status, stream
from workerd.control.client import Refused, Unreachable, find_socket, request

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Completion asks the daemon for its programs; a shell must not wait longer than this.
COMPLETION_TIMEOUT = 0.5
SIGNALS = ("HUP", "INT", "QUIT", "USR1", "USR2", "TERM", "KILL", "CONT", "STOP", "TSTP", "WINCH")


def _target() -> tuple[str | None, str | None]:
    """(-s, -c) as given to the group."""
    params = click.get_current_context().find_root().params
    return params.get("socket"), params.get("config")


def _ask(message: dict[str, Any], timeout: float | None = 30.0) -> dict[str, Any]:
    return ask(_target(), message, timeout)


def _programs(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """The running daemon's program names (and `all`), for shell completion."""
    try:
        params = ctx.find_root().params
        path = find_socket(params.get("socket"), params.get("config"))
        reply = next(iter(request(path, {"cmd": "status"}, COMPLETION_TIMEOUT)))
        names = [p["name"] for p in reply["status"]["programs"]]
    except (Unreachable, Refused, ValueError, OSError, KeyError, TypeError, StopIteration):
        return []
    return [n for n in ([*names, "all"] if param.nargs != 1 else names) if n.startswith(incomplete)]


@click.group(context_settings=CONTEXT, epilog=examples(
    "workerctl status", "workerctl -c /etc/workerd/workers.toml restart email",
    "workerctl scale email 4", "workerctl logs -f email", "workerctl history email --since 10m"))
@click.option("-s", "--socket", metavar="SOCKET", help="The daemon's control socket.")
@click.option("-c", "--config", metavar="FILE", help="Find the socket in this config file.")
def cli(socket: str | None, config: str | None) -> None:
    """Control a running workerd daemon.

    The daemon is found by -s SOCKET, else the socket named in -c FILE, else
    $WORKERD_SOCKET, else the default socket. Exit codes: 0 done, 1 refused or
    failed, 2 usage error, 3 no daemon answers.
    """


@cli.command(epilog=examples("workerctl status", "workerctl status email --json"))
@click.argument("programs", nargs=-1, metavar="[PROGRAM]...", shell_complete=_programs)
@click.option("--json", "as_json", is_flag=True, help="Print the status document as JSON.")
def status(programs: tuple[str, ...], as_json: bool) -> None:
    """Show programs and their processes."""
    show_status(_target(), list(programs), as_json)


def _act(command: str, programs: tuple[str, ...], no_wait: bool, **extra: Any) -> None:
    message = {"cmd": command, "programs": list(programs), "wait": not no_wait, **extra}
    print(_ask(message, timeout=None).get("message", "ok"))


_no_wait = click.option("--no-wait", is_flag=True, help="Return at once instead of waiting.")


@cli.command(epilog=examples("workerctl start email", "workerctl start all --no-wait"))
@click.argument("programs", nargs=-1, required=True, metavar="PROGRAM...|all", shell_complete=_programs)
@_no_wait
def start(programs: tuple[str, ...], no_wait: bool) -> None:
    """Start programs and wait until they run."""
    _act("start", programs, no_wait)


@cli.command(epilog=examples("workerctl stop email", "workerctl stop all"))
@click.argument("programs", nargs=-1, required=True, metavar="PROGRAM...|all", shell_complete=_programs)
@_no_wait
def stop(programs: tuple[str, ...], no_wait: bool) -> None:
    """Stop programs gracefully and wait until they stopped."""
    _act("stop", programs, no_wait)


@cli.command(epilog=examples("workerctl restart email", "workerctl restart --rolling email"))
@click.argument("programs", nargs=-1, required=True, metavar="PROGRAM...|all", shell_complete=_programs)
@_no_wait
@click.option("--rolling", is_flag=True, help="One at a time: a new process running, then an old one stopped.")
def restart(programs: tuple[str, ...], no_wait: bool, rolling: bool) -> None:
    """Restart programs and wait until they run again."""
    _act("restart", programs, no_wait, **({"rolling": True} if rolling else {}))


def _count(ctx: click.Context, param: click.Parameter, value: str) -> int | str:
    if value == "auto":
        return value
    if value.isascii() and value.isdigit() and len(value) < 10:
        return int(value)
    raise click.BadParameter(f"{value[:20]!r}: a number >= 0 or 'auto'")


@cli.command(epilog=examples("workerctl scale email 4", "workerctl scale email auto"))
@click.argument("program", shell_complete=_programs)
@click.argument("count", metavar="COUNT|auto", callback=_count)
def scale(program: str, count: int | str) -> None:
    """Pin PROGRAM to COUNT processes, or hand it back to its config or autoscaler with `auto`."""
    print(_ask({"cmd": "scale", "program": program, "count": count})["message"])


def _since(ctx: click.Context, param: click.Parameter, value: str) -> float:
    from workerd.config.units import InvalidValue, parse_duration

    try:
        seconds = parse_duration(value)
    except InvalidValue as exc:
        raise click.BadParameter(str(exc)) from None
    if seconds <= 0:
        raise click.BadParameter(f"{value!r}: a duration > 0")
    return seconds


@cli.command(epilog=examples("workerctl history email", "workerctl history email --since 10m --json"))
@click.argument("program", shell_complete=_programs)
@click.option("--since", default="1h", show_default=True, callback=_since, metavar="DURATION",
              help="How far back (the daemon keeps the last hour).")
@click.option("--json", "as_json", is_flag=True, help="Print the series as JSON, as the console gets it.")
def history(program: str, since: float, as_json: bool) -> None:
    """Queue depth, desired and running processes over time, with restarts and limits."""
    document = _ask({"cmd": "history", "program": program, "since": since})["history"]
    if as_json:
        import json

        print(json.dumps(document, indent=2))
    else:
        from workerd.cli.status_view import render_history

        print(render_history(document))


@cli.command(name="signal", epilog=examples("workerctl signal email HUP", "workerctl signal email 10"))
@click.argument("program", shell_complete=_programs)
@click.argument("signal_name", metavar="SIGNAL",
                shell_complete=lambda ctx, param, incomplete: [s for s in SIGNALS if s.startswith(incomplete.upper())])
def signal_(program: str, signal_name: str) -> None:
    """Send SIGNAL (a name or a number) to every process group of PROGRAM."""
    print(_ask({"cmd": "signal", "programs": [program], "signal": signal_name})["message"])


@cli.command(epilog=examples("workerctl reload"))
def reload() -> None:
    """Re-read the config file and apply what changed (a bad file changes nothing)."""
    for line in _ask({"cmd": "reload"})["changes"]:
        print(line)


@cli.command(epilog=examples("workerctl logs email", "workerctl logs -n 100 -f email"))
@click.argument("program", shell_complete=_programs)
@click.option("-n", "lines", type=click.IntRange(min=0), default=10, show_default=True, help="How many lines.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output.")
def logs(program: str, lines: int, follow: bool) -> None:
    """Print the last lines of PROGRAM's output."""
    message = {"cmd": "logs", "program": program, "lines": lines, "follow": follow}
    try:
        for reply in stream(_target(), message, None if follow else 30.0):
            sys.stdout.write(reply.get("data", ""))
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass


@cli.command(epilog=examples("workerctl shutdown"))
def shutdown() -> None:
    """Stop every worker gracefully and end the daemon."""
    print(_ask({"cmd": "shutdown"})["message"])


@cli.command(epilog=examples("workerctl completion bash > /etc/bash_completion.d/workerctl",
                             "workerctl completion zsh > \"${fpath[1]}/_workerctl\"",
                             "workerctl completion fish > ~/.config/fish/completions/workerctl.fish"))
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (program names come from the daemon)."""
    from click.shell_completion import get_completion_class

    completer = get_completion_class(shell)
    assert completer is not None  # click ships all three
    print(completer(cli, {}, "workerctl", "_WORKERCTL_COMPLETE").source())
