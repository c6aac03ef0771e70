"""`workerd`'s commands on click (the entry point is workerd.py): run the daemon, check a
config, install it as a service, export it, import another supervisor's config.

Every subcommand but `import` takes the config with -c FILE (or $WORKERD_CONFIG); a config that
does not load is its one-line error and exit 2. The daemon's own code is imported
only by `start`.
"""

from __future__ import annotations

import sys

import click

from workerd import __version__
from workerd.cli.clicking import CONTEXT, examples
from workerd.cli.loading import load_config, preflight, start_daemon
from workerd.control.protocol import EXIT_USAGE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def _config_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-c", "--config", "config_path", envvar="WORKERD_CONFIG", required=True, metavar="FILE",
                        help="The TOML config file (default: $WORKERD_CONFIG).")(command)


@click.group(context_settings=CONTEXT, epilog=examples(
    "workerd check -c workers.toml", "workerd start -c workers.toml",
    "sudo workerd install-unit -c /etc/workerd/workers.toml",
    "workerd export kubernetes -c workers.toml --image registry.example/app:1",
    "workerd import /etc/supervisor/supervisord.conf -o workers.toml"))
@click.version_option(__version__, "--version", prog_name="workerd", message="%(prog)s %(version)s")
def cli() -> None:
    """Supervise and autoscale an application's background workers."""


@cli.command(epilog=examples("workerd start -c workers.toml", "WORKERD_CONFIG=workers.toml workerd start -v"))
@_config_option
@click.option("-v", "--verbose", is_flag=True, help="Also log debug messages.")
def start(config_path: str, verbose: bool) -> None:
    """Run the daemon in the foreground until SIGTERM/SIGINT or `workerctl shutdown`."""
    start_daemon(config_path, verbose)


@cli.command(epilog=examples("workerd check -c workers.toml"))
@_config_option
def check(config_path: str) -> None:
    """Validate the config file and print one line per program."""
    from workerd.config.model import LimitsConfig
    from workerd.config.summary import summarize
    from workerd.process.cgroups import CgroupTree, enforcement

    config = load_config(config_path)
    missing = preflight(config)
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


def _unit_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value or not all(c.isalnum() or c in "-_.@:" for c in value) or value.endswith(".service"):
        raise click.BadParameter(f"not a unit name: {value!r} (letters, digits and -_.@:, no .service)")
    return value


def _user(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    import pwd

    if value is not None:
        try:
            pwd.getpwnam(value)
        except KeyError:
            raise click.BadParameter(f"no such user: {value!r}") from None
    return value


@cli.command(name="install-unit", epilog=examples(
    "sudo workerd install-unit -c /etc/workerd/workers.toml",
    "sudo workerd install-unit -c /srv/shop/workers.toml --name shop-workers --user shop",
    "workerd install-unit -c workers.toml --dry-run"))
@_config_option
@click.option("--name", default="workerd", show_default=True, callback=_unit_name,
              help="The unit's name: NAME.service.")
@click.option("--user", callback=_user, help="Run the daemon as this user (default: root, which can run each "
              "program as its own `user`).")
@click.option("--unit-dir", default="/etc/systemd/system", show_default=True, help="Where to write the unit.")
@click.option("--dry-run", is_flag=True, help="Print the unit instead of writing it.")
@click.option("--force", is_flag=True, help="Replace an existing unit.")
def install_unit(config_path: str, name: str, user: str | None, unit_dir: str, dry_run: bool, force: bool) -> None:
    """Write a systemd unit that runs this workerd with this config at boot."""
    from workerd.cli.install_unit import install_unit as install

    config = load_config(config_path)
    missing = preflight(config)
    if missing:
        print(f"workerd: {missing[0]}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    sys.exit(install(config, name, user, unit_dir, dry_run, force))


@cli.group()
def export() -> None:
    """Turn the config into another system's manifests."""


@export.command(epilog=examples(
    "workerd export kubernetes -c workers.toml --image registry.example/app:1 > workers.yaml",
    "workerd export kubernetes -c workers.toml --image app:1 --namespace shop -o k8s/ --strict"))
@_config_option
@click.option("--image", required=True, help="The container image that holds the app.")
@click.option("--namespace", help="The namespace of every manifest.")
@click.option("--name-prefix", default="", help="Put before every name (e.g. shop-).")
@click.option("-o", "--output", metavar="DIR", help="Write one file per program into DIR (default: one YAML "
              "stream on stdout).")
@click.option("--strict", is_flag=True, help="Refuse to export when anything would be dropped.")
@click.option("--probe", is_flag=True, help="Ask Redis for the type of each key (streams and their groups).")
@click.option("--env-secret", "env_secrets", multiple=True, metavar="NAME", help="Put this environment variable in "
              "the program's Secret too (names with PASSWORD, SECRET, TOKEN, KEY, DSN and URLs with credentials "
              "always go there). Repeatable.")
def kubernetes(config_path: str, image: str, namespace: str | None, name_prefix: str, output: str | None,
               strict: bool, probe: bool, env_secrets: tuple[str, ...]) -> None:
    """Deployments, and KEDA ScaledObjects for the autoscaled programs.

    The commands run in the image, and the users are the image's, so this box need
    have neither.
    """
    from workerd.cli.export import export_kubernetes

    config = load_config(config_path, host_checks=False)
    sys.exit(export_kubernetes(config, image, namespace, name_prefix, output, strict, probe, frozenset(env_secrets)))


@cli.command(name="import", epilog=examples(
    "workerd import /etc/supervisor/supervisord.conf -o workers.toml",
    "workerd import Procfile -o workers.toml",
    "workerd import ecosystem.config.js --env production -o workers.toml"))
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--from", "kind", type=click.Choice(["supervisord", "procfile", "pm2"]),
              help="The tool SOURCE belongs to (default: guessed from its name and content).")
@click.option("-o", "--output", metavar="FILE", help="Write workers.toml there (default: stdout).")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@click.option("--include-web", is_flag=True, help="Procfile: keep the `web` process type.")
@click.option("--env", "env_name", metavar="NAME", help="PM2: merge the apps' env_NAME over env.")
@click.option("--no-js", "no_js", is_flag=True, help="PM2: refuse a .js file (reading one runs it with node).")
def import_(source: str, kind: str | None, output: str | None, force: bool, include_web: bool,
            env_name: str | None, no_js: bool) -> None:
    """Write a workers.toml equivalent to a supervisord.conf, a Procfile or a PM2 ecosystem file.

    Where the two tools differ, a comment above the key says what was done; what has no
    equivalent is listed at the end. The result is loaded as `workerd check` would.
    """
    from workerd.cli.import_config import import_config

    sys.exit(import_config(source, kind, output, force, include_web, env_name, allow_js=not no_js))
