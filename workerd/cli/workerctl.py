"""`workerctl`: talk to a running workerd. Imports only click and workerd.control."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click

from workerd.control.client import Refused, Unreachable, find_socket, request
from workerd.control.protocol import EXIT_FAILED, EXIT_UNREACHABLE


def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    click.echo(f"workerctl: {message}", err=True)
    sys.exit(code)


def _ask(ctx: click.Context, message: dict[str, Any], timeout: float | None = 30.0) -> dict[str, Any]:
    """One request, one reply; errors become one line on stderr and an exit code."""
    for reply in _stream(ctx, message, timeout):
        return reply
    _fail("the daemon closed the connection without answering", EXIT_UNREACHABLE)


def _stream(ctx: click.Context, message: dict[str, Any], timeout: float | None) -> Any:
    try:
        path = find_socket(ctx.obj["socket"], ctx.obj["config"])
        for reply in request(path, message, timeout):
            if not reply.get("ok", True):
                _fail(str(reply.get("error", "failed")))
            yield reply
    except Unreachable as exc:
        _fail(str(exc), EXIT_UNREACHABLE)
    except Refused as exc:
        _fail(str(exc))
    except (ValueError, OSError) as exc:
        _fail(str(exc))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-s", "--socket", "socket_path", help="The daemon's control socket.")
@click.option("-c", "--config", "config_path", help="Find the socket in this config file.")
@click.pass_context
def cli(ctx: click.Context, socket_path: str | None, config_path: str | None) -> None:
    """Control a running workerd daemon."""
    ctx.obj = {"socket": socket_path, "config": config_path}


@cli.command()
@click.argument("programs", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the raw status as JSON.")
@click.pass_context
def status(ctx: click.Context, programs: tuple[str, ...], as_json: bool) -> None:
    """Show programs and their processes."""
    data = _ask(ctx, {"cmd": "status", "programs": list(programs)})["status"]
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(render_status(data))


def _act(cmd: str, help_text: str) -> None:
    @cli.command(cmd, help=help_text)
    @click.argument("programs", nargs=-1, required=True)
    @click.option("--no-wait", is_flag=True, help="Return at once instead of waiting for the outcome.")
    @click.pass_context
    def command(ctx: click.Context, programs: tuple[str, ...], no_wait: bool) -> None:
        reply = _ask(ctx, {"cmd": cmd, "programs": list(programs), "wait": not no_wait}, timeout=None)
        click.echo(reply.get("message", "ok"))


_act("start", "Start PROGRAM... (or all) and wait until running.")
_act("stop", "Stop PROGRAM... (or all) and wait until stopped.")
_act("restart", "Restart PROGRAM... (or all) and wait until running again.")


@cli.command()
@click.argument("program")
@click.argument("count")
@click.pass_context
def scale(ctx: click.Context, program: str, count: str) -> None:
    """Pin PROGRAM to COUNT processes, or hand it back with `auto`."""
    if count != "auto":
        if not count.isdigit():
            raise click.BadParameter(f"{count!r} is not a number >= 0 or 'auto'", param_hint="COUNT")
        value: Any = int(count)
    else:
        value = "auto"
    click.echo(_ask(ctx, {"cmd": "scale", "program": program, "count": value})["message"])


@cli.command("signal")
@click.argument("program")
@click.argument("signal_name", metavar="SIGNAL")
@click.pass_context
def signal_(ctx: click.Context, program: str, signal_name: str) -> None:
    """Send SIGNAL (name or number) to every process group of PROGRAM."""
    click.echo(_ask(ctx, {"cmd": "signal", "programs": [program], "signal": signal_name})["message"])


@cli.command()
@click.pass_context
def reload(ctx: click.Context) -> None:
    """Re-read the config file and apply what changed."""
    for line in _ask(ctx, {"cmd": "reload"})["changes"]:
        click.echo(line)


@cli.command()
@click.argument("program")
@click.option("-n", "lines", default=10, show_default=True, help="How many lines.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output.")
@click.pass_context
def logs(ctx: click.Context, program: str, lines: int, follow: bool) -> None:
    """Print the last lines of PROGRAM's output."""
    out = sys.stdout
    try:
        for reply in _stream(ctx, {"cmd": "logs", "program": program, "lines": lines, "follow": follow},
                             None if follow else 30.0):
            out.write(reply.get("data", ""))
            out.flush()
    except KeyboardInterrupt:
        pass


@cli.command()
@click.pass_context
def shutdown(ctx: click.Context) -> None:
    """Stop every worker gracefully and end the daemon."""
    click.echo(_ask(ctx, {"cmd": "shutdown"})["message"])


def render_status(data: dict[str, Any]) -> str:
    header = ("PROGRAM", "INST", "PID", "STATE", "UPTIME", "RESTARTS", "LAST EXIT", "RSS", "CPU%")
    rows = [header]
    summary = []
    for program in data["programs"]:
        for p in program["processes"]:
            rows.append((
                program["name"], str(p["instance"]), _dash(p["pid"]), p["state"], _duration(p["uptime"]),
                str(p["restarts"]), p["last_exit"] or "-", _size(p["rss"]), _dash(p["cpu_percent"]),
            ))
        line = f"{program['name']}: {program['running']}/{program['desired']} running"
        notes = []
        if not program.get("enabled", True):
            notes.append("stopped by workerctl")
        if program.get("pinned") is not None:
            notes.append(f"pinned to {program['pinned']}")
        notes += [f"{p['instance']}: {p['state']}: {p['reason']}" for p in program["processes"] if p["reason"]]
        summary.append(line + (f" ({'; '.join(notes)})" if notes else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    table = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(table + [""] + summary) if summary else "no programs"


def _dash(value: Any) -> str:
    return "-" if value is None else str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return str(value)


def main() -> None:
    cli(prog_name="workerctl")
