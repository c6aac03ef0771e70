"""`workerd start|check -c FILE`: the daemon's command line."""

from __future__ import annotations

import logging
import sys

import click

from workerd import __version__
from workerd.control.protocol import EXIT_USAGE

CONFIG = click.option(
    "-c", "--config", "config_path", required=True, envvar="WORKERD_CONFIG",
    type=click.Path(dir_okay=False), help="The TOML config file ($WORKERD_CONFIG).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="workerd", message="%(prog)s %(version)s")
def cli() -> None:
    """Supervise and autoscale an application's background workers."""


@cli.command()
@CONFIG
@click.option("-v", "--verbose", is_flag=True, help="Also log debug messages.")
def start(config_path: str, verbose: bool) -> None:
    """Run the daemon in the foreground until SIGTERM/SIGINT or `workerctl shutdown`."""
    from workerd.config.load import ConfigError, load

    try:
        config = load(config_path)
    except ConfigError as exc:
        click.echo(f"workerd: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s workerd %(levelname)s %(message)s",
    )
    from workerd.runtime.daemon import run

    sys.exit(run(config))


@cli.command()
@CONFIG
def check(config_path: str) -> None:
    """Validate the config file and print one line per program."""
    from workerd.config.load import ConfigError, load, summarize

    try:
        config = load(config_path)
    except ConfigError as exc:
        click.echo(f"workerd: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"{config.path}: ok, {len(config.programs)} program(s)")
    for line in summarize(config):
        click.echo(f"  {line}")


def main() -> None:
    cli(prog_name="workerd")
