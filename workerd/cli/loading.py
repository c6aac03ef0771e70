"""What `workerd`'s commands share without click: a config loaded or its one-line error
(exit 2), what the box lacks for the workers, and the daemon's start."""

from __future__ import annotations

import sys

from workerd.control.protocol import EXIT_USAGE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from workerd.config.model import Config


def load_config(path: str, host_checks: bool = True) -> Config:
    from workerd.config.load import ConfigError, load

    try:
        return load(path, host_checks)
    except ConfigError as exc:
        print(f"workerd: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def preflight(config: Config) -> list[str]:
    """What this box lacks for the workers (a directory, a command)."""
    from workerd.config.preflight import problems

    return problems(config)


def start_daemon(config_path: str, verbose: bool) -> NoReturn:
    """Run the daemon in the foreground until SIGTERM/SIGINT or `workerctl shutdown`."""
    import logging

    from workerd.runtime.daemon_log import configure

    config = load_config(config_path)
    configure(sys.stderr, verbose)
    for line in preflight(config):  # the worker's start fails with the OS error and is retried
        logging.getLogger("workerd").warning("%s", line)
    from workerd.daemon import run as run_daemon

    sys.exit(run_daemon(config))
