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
        ("install-unit", "write a systemd unit that runs this workerd with this config at boot"),
        ("export", "turn the config into other systems' manifests: Kubernetes Deployments and KEDA ScaledObjects"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument(
            "-c", "--config", default=os.environ.get("WORKERD_CONFIG"), required="WORKERD_CONFIG" not in os.environ,
            help="the TOML config file (default: $WORKERD_CONFIG)",
        )
        if name == "start":
            sub.add_argument("-v", "--verbose", action="store_true", help="also log debug messages")
        if name == "export":
            sub.add_argument("target", choices=["kubernetes"], help="what to export to")
            sub.add_argument("--image", required=True, help="the container image that holds the app")
            sub.add_argument("--namespace", help="the namespace of every manifest")
            sub.add_argument("--name-prefix", default="", help="put before every name (e.g. shop-)")
            sub.add_argument("-o", "--output", help="write one file per program into this directory "
                             "(default: one YAML stream on stdout)")
            sub.add_argument("--strict", action="store_true",
                             help="refuse to export when anything would be dropped")
            sub.add_argument("--probe", action="store_true",
                             help="ask Redis for the type of each key (streams and their groups)")
        if name == "install-unit":
            sub.add_argument("--name", default="workerd", type=_unit_name,
                             help="the unit's name, NAME.service (default: workerd)")
            sub.add_argument("--user", type=_user, help="run the daemon as this user (default: root, which can run "
                             "each program as its own `user`)")
            sub.add_argument("--unit-dir", default="/etc/systemd/system",
                             help="where to write the unit (default: /etc/systemd/system)")
            sub.add_argument("--dry-run", action="store_true", help="print the unit instead of writing it")
            sub.add_argument("--force", action="store_true", help="replace an existing unit")
    return parser


def _unit_name(value: str) -> str:
    if not value or not all(c.isalnum() or c in "-_.@:" for c in value) or value.endswith(".service"):
        raise argparse.ArgumentTypeError(f"not a unit name: {value!r} (letters, digits and -_.@:, no .service)")
    return value


def _user(value: str) -> str:
    import pwd

    try:
        pwd.getpwnam(value)
    except KeyError:
        raise argparse.ArgumentTypeError(f"no such user: {value!r}") from None
    return value


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
    if args.command == "export":  # the commands run in the image: this box need not have them
        from workerd.cli.export import export_kubernetes

        sys.exit(export_kubernetes(config, args.image, args.namespace, args.name_prefix, args.output, args.strict,
                                   args.probe))
    if args.command == "install-unit":
        if missing:
            print(f"workerd: {missing[0]}", file=sys.stderr)
            sys.exit(EXIT_USAGE)
        from workerd.cli.install_unit import install_unit

        sys.exit(install_unit(config, args.name, args.user, args.unit_dir, args.dry_run, args.force))
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
    from workerd.runtime.daemon_log import configure

    configure(sys.stderr, args.verbose)
    for line in missing:  # the worker's start fails with the OS error and is retried
        logging.getLogger("workerd").warning("%s", line)
    from workerd.runtime.daemon import run

    sys.exit(run(config))
