"""`workerctl`: talk to a running workerd (the commands are in ctl_commands.py).

`workerctl status` is what monitoring scripts and health checks run in loops, so its
plain forms, `[-s SOCKET | -c FILE]... status [--json] [PROGRAM]...`, are answered
without importing click: click's import is ~30 ms of a ~60 ms run (bench `status`).
Anything else, `--help`, a typo and shell completion included, goes to click, which
gives the same answers (a test holds both paths to the same output).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_VALUED = {"-s": "socket", "--socket": "socket", "-c": "config", "--config": "config"}


def plain_status(argv: list[str]) -> dict[str, Any] | None:
    """The arguments of a plain `status` request, or None for anything else."""
    found: dict[str, Any] = {"socket": None, "config": None, "programs": [], "as_json": False}
    args = iter(argv)
    for arg in args:
        name, eq, value = arg.partition("=")
        if arg in _VALUED:
            value = next(args, "")
            if not value or value.startswith("-"):
                return None
            found[_VALUED[arg]] = value
        elif eq and name.startswith("--") and name in _VALUED and value:
            found[_VALUED[name]] = value
        elif arg == "status":
            break
        else:
            return None
    else:
        return None
    for arg in args:
        if arg == "--json":
            found["as_json"] = True
        elif arg.startswith("-"):
            return None
        else:
            found["programs"].append(arg)
    return found


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        plain = None if "_WORKERCTL_COMPLETE" in os.environ else plain_status(args)
        if plain is not None:
            from workerd.cli.talk import show_status

            show_status((plain["socket"], plain["config"]), plain["programs"], plain["as_json"])
            sys.stdout.flush()
            sys.exit(0)
        from workerd.cli.clicking import run
        from workerd.cli.ctl_commands import cli

        run(cli, "workerctl", args)
    except BrokenPipeError:  # `workerctl status | head`: the reader is gone, and that is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
