"""`workerd start|check -c FILE`: the daemon's command line.

argparse rather than click: the daemon's resident memory is a product goal (it
sits next to the app on a small box) and click costs ~1 MiB more for two commands.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from workerd import __version__
from workerd.cli.args import Parser
from workerd.control.protocol import EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="workerd", description="Supervise and autoscale an application's background workers.")
    parser.add_argument("--version", action="version", version=f"workerd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for name, text in (
        ("start", "run the daemon in the foreground until SIGTERM/SIGINT or `workerctl shutdown`"),
        ("check", "validate the config file and print one line per program"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument(
            "-c", "--config", default=os.environ.get("WORKERD_CONFIG"), required="WORKERD_CONFIG" not in os.environ,
            help="the TOML config file (default: $WORKERD_CONFIG)",
        )
        if name == "start":
            sub.add_argument("-v", "--verbose", action="store_true", help="also log debug messages")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    from workerd.config.load import ConfigError, load

    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"workerd: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    from workerd.config.preflight import problems

    missing = problems(config)
    if args.command == "check":
        from workerd.config.model import LimitsConfig
        from workerd.config.summary import summarize
        from workerd.runtime.cgroups import CgroupTree, enforcement

        if missing:
            for line in missing:
                print(f"workerd: {line}", file=sys.stderr)
            sys.exit(EXIT_USAGE)
        most = sum(p.most_processes for p in config.programs.values())
        print(f"{config.path}: ok, {len(config.programs)} program(s), "
              f"at most {most} processes (max_processes {config.daemon.max_processes})")
        for line in summarize(config):
            print(f"  {line}")
        if any(p.limits != LimitsConfig() for p in config.programs.values()):
            print(f"  limits enforced by: {enforcement(*CgroupTree.find())}")
        return
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s workerd %(levelname)s %(message)s",
    )
    for line in missing:  # the worker's start fails with the OS error and is retried
        logging.getLogger("workerd").warning("%s", line)
    from workerd.runtime.daemon import run

    sys.exit(run(config))
