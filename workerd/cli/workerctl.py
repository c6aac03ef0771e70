"""`workerctl`: talk to a running workerd.

It imports only the standard library and workerd.control (no click, nothing of the
daemon): `workerctl status` is run by scripts and humans alike and must answer fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, NoReturn

from workerd.cli.args import Parser
from workerd.control.client import Refused, Unreachable, find_socket, request
from workerd.control.protocol import EXIT_FAILED, EXIT_UNREACHABLE


def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    print(f"workerctl: {message}", file=sys.stderr)
    sys.exit(code)


def _stream(args: argparse.Namespace, message: dict[str, Any], timeout: float | None) -> Iterator[dict[str, Any]]:
    """Send one request and yield its replies; every error becomes one line and an exit code."""
    try:
        path = find_socket(args.socket, args.config)
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


def _ask(args: argparse.Namespace, message: dict[str, Any], timeout: float | None = 30.0) -> dict[str, Any]:
    for reply in _stream(args, message, timeout):
        return reply
    _fail("the daemon closed the connection without answering", EXIT_UNREACHABLE)


def status(args: argparse.Namespace) -> None:
    data = _ask(args, {"cmd": "status", "programs": args.programs})["status"]
    print(json.dumps(data, indent=2) if args.json else render_status(data))


def act(args: argparse.Namespace) -> None:
    message = {"cmd": args.command, "programs": args.programs, "wait": not args.no_wait}
    if getattr(args, "rolling", False):
        message["rolling"] = True
    print(_ask(args, message, timeout=None).get("message", "ok"))


def scale(args: argparse.Namespace) -> None:
    count: Any = "auto"
    if args.count != "auto":
        try:
            count = int(args.count) if args.count.isascii() and args.count.isdigit() else None
        except ValueError:  # more digits than int() reads: far over any max_processes anyway
            count = None
        if count is None:
            _fail(f"invalid count {args.count[:20]!r}: a number >= 0 or 'auto'", 2)
    print(_ask(args, {"cmd": "scale", "program": args.program, "count": count})["message"])


def signal_(args: argparse.Namespace) -> None:
    print(_ask(args, {"cmd": "signal", "programs": [args.program], "signal": args.signal})["message"])


def reload(args: argparse.Namespace) -> None:
    for line in _ask(args, {"cmd": "reload"})["changes"]:
        print(line)


def logs(args: argparse.Namespace) -> None:
    message = {"cmd": "logs", "program": args.program, "lines": args.n, "follow": args.follow}
    try:
        for reply in _stream(args, message, None if args.follow else 30.0):
            sys.stdout.write(reply.get("data", ""))
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass


def shutdown(args: argparse.Namespace) -> None:
    print(_ask(args, {"cmd": "shutdown"})["message"])


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="workerctl", description="Control a running workerd daemon.")
    parser.add_argument("-s", "--socket", help="the daemon's control socket")
    parser.add_argument("-c", "--config", help="find the socket in this config file")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    sub = commands.add_parser("status", help="show programs and their processes")
    sub.add_argument("programs", nargs="*", metavar="PROGRAM")
    sub.add_argument("--json", action="store_true", help="print the status as JSON")
    sub.set_defaults(run=status)
    for name, text in (
        ("start", "start PROGRAM... (or all) and wait until running"),
        ("stop", "stop PROGRAM... (or all) and wait until stopped"),
        ("restart", "restart PROGRAM... (or all) and wait until running again"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("programs", nargs="+", metavar="PROGRAM")
        sub.add_argument("--no-wait", action="store_true", help="return at once")
        if name == "restart":
            sub.add_argument("--rolling", action="store_true",
                             help="one at a time: a new process running, then an old one stopped")
        sub.set_defaults(run=act)
    sub = commands.add_parser("scale", help="pin PROGRAM to COUNT processes, or `auto` to hand it back")
    sub.add_argument("program", metavar="PROGRAM")
    sub.add_argument("count", metavar="COUNT|auto")
    sub.set_defaults(run=scale)
    sub = commands.add_parser("signal", help="send SIGNAL (name or number) to every process group of PROGRAM")
    sub.add_argument("program", metavar="PROGRAM")
    sub.add_argument("signal", metavar="SIGNAL")
    sub.set_defaults(run=signal_)
    sub = commands.add_parser("reload", help="re-read the config file and apply what changed")
    sub.set_defaults(run=reload)
    sub = commands.add_parser("logs", help="print the last lines of PROGRAM's output")
    sub.add_argument("program", metavar="PROGRAM")
    sub.add_argument("-n", type=int, default=10, metavar="N", help="how many lines (default 10)")
    sub.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    sub.set_defaults(run=logs)
    sub = commands.add_parser("shutdown", help="stop every worker gracefully and end the daemon")
    sub.set_defaults(run=shutdown)
    return parser


def render_status(data: dict[str, Any]) -> str:
    header = ("PROGRAM", "INST", "PID", "STATE", "UPTIME", "RESTARTS", "LAST EXIT", "RSS", "CPU%")
    rows = [header]
    summary = []
    for program in data["programs"]:
        for p in program["processes"]:
            rows.append((
                program["name"], str(p["instance"]) + (" old" if p.get("outgoing") else ""), _dash(p["pid"]), p["state"], _duration(p["uptime"]),
                str(p["restarts"]), p["last_exit"] or "-", _size(p["rss"]), _dash(p["cpu_percent"]),
            ))
        line = f"{program['name']}: {program['running']}/{program['desired']} running"
        notes = []
        if not program.get("enabled", True):
            notes.append("stopped by workerctl")
        if program.get("pinned") is not None:
            notes.append(f"pinned to {program['pinned']}")
        auto = program.get("autoscale")
        if auto:
            notes.append(_autoscale_note(auto))
        handover = program.get("handover")
        if handover:
            how = "rolling restart: one at a time" if handover["rolling"] else "new config"
            notes.append(f"{how}; {handover['old']} old process(es) kept until new ones run")
            if handover["held"]:
                notes.append(f"held: {handover['held']}")
        notes += [_worker_note(p) for p in program["processes"] if _worker_note(p)]
        notes += [f"{p['instance']}: {p['state']}: {p['reason']}" for p in program["processes"] if p["reason"]]
        notes += [f"{p['instance']}: last limit: {p['last_limit']}" for p in program["processes"]
                  if p.get("last_limit") and p["last_limit"] != p["reason"]]
        summary.append(line + (f" ({'; '.join(notes)})" if notes else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    table = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(table + [""] + summary) if summary else "no programs"


def _worker_note(p: dict[str, Any]) -> str:
    """What a worker said on the notify socket: busy for how long, its STATUS= text."""
    said = []
    if p.get("busy"):
        said.append(f"busy {_duration(p['job_age'])}")
    if p.get("draining"):
        said.append("draining")
    if p.get("status_text"):
        said.append(json.dumps(p["status_text"], ensure_ascii=False))
    return f"{p['instance']}: {', '.join(said)}" if said else ""


def _autoscale_note(auto: dict[str, Any]) -> str:
    depth = "?" if auto["depth"] is None else auto["depth"]
    note = f"autoscale {auto['source']}: depth {depth}, desired {auto['desired']} in [{auto['min']}, {auto['max']}]"
    if auto.get("dead_letters"):
        note += f"; {auto['dead_letters']} dead letters"
    if auto.get("held"):
        note += f"; {auto['held']}"
    if auto.get("error"):
        note += f"; source error for {auto['error_for']:g}s: {auto['error']}"
    return note


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


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        args.run(args)
        sys.stdout.flush()
    except BrokenPipeError:  # `workerctl status | head`: the reader is gone, and that is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
