"""What `workerd` and `workerctl` share on click: every usage error is one line on
stderr and exit 2 (as SPEC asks of every error), where click would print a usage
block; help pages end with examples."""

from __future__ import annotations

import sys

import click

from workerd.control.protocol import EXIT_FAILED, EXIT_USAGE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def examples(*lines: str) -> str:
    """A help epilog: click keeps a paragraph that starts with \\b as it is."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def run(group: click.Group, prog: str, argv: list[str] | None) -> NoReturn:
    try:
        code = group.main(args=argv, prog_name=prog, standalone_mode=False)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else prog
        print(f"{prog}: {exc.format_message()} (see {where} --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        print(f"{prog}: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except click.Abort:  # Ctrl-C at a prompt or during a command
        sys.exit(EXIT_FAILED)
    sys.exit(code if isinstance(code, int) else 0)
