"""`workerd`: the entry point (the commands are in workerd_commands.py).

`workerd start -c FILE [-v]`, the daemon's own command line under systemd, is run
without importing click: click stays resident in the daemon otherwise, ~1.6 MiB of its
RSS for a command line parsed once (bench `memory`). Anything else, `--help`, a typo
and `$WORKERD_CONFIG` included, goes to click.
"""

from __future__ import annotations

import os
import sys

_CONFIG = ("-c", "--config")
_VERBOSE = ("-v", "--verbose")


def plain_start(argv: list[str]) -> tuple[str, bool] | None:
    """(config path, verbose) of a plain `start`, or None for anything else."""
    if argv[:1] != ["start"]:
        return None
    config, verbose = None, False
    args = iter(argv[1:])
    for arg in args:
        if arg in _CONFIG and config is None:
            config = next(args, "")
        elif arg.startswith("--config=") and config is None:
            config = arg.removeprefix("--config=")
        elif arg in _VERBOSE:
            verbose = True
        else:
            return None
    return (config, verbose) if config and not config.startswith("-") else None


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    plain = None if "_WORKERD_COMPLETE" in os.environ else plain_start(args)
    if plain is not None:
        from workerd.cli.loading import start_daemon

        start_daemon(*plain)
    from workerd.cli.clicking import run
    from workerd.cli.workerd_commands import cli

    run(cli, "workerd", argv)
