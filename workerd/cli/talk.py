"""Requests to the daemon for workerctl, and their failures as one line and an exit
code. Standard library and workerd.control only: the fast `status` path uses it
without click."""

from __future__ import annotations

import sys

from workerd.control.client import Refused, Unreachable, find_socket, request
from workerd.control.protocol import EXIT_FAILED, EXIT_UNREACHABLE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, NoReturn


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    print(f"workerctl: {message}", file=sys.stderr)
    sys.exit(code)


def stream(target: tuple[str | None, str | None], message: dict[str, Any],
           timeout: float | None) -> Iterator[dict[str, Any]]:
    """Send one request to the daemon found by (-s, -c) and yield its replies."""
    try:
        for reply in request(find_socket(*target), message, timeout):
            if not reply.get("ok", True):
                fail(str(reply.get("error", "failed")))
            yield reply
    except Unreachable as exc:
        fail(str(exc), EXIT_UNREACHABLE)
    except Refused as exc:
        fail(str(exc))
    except (ValueError, OSError) as exc:
        fail(str(exc))


def ask(target: tuple[str | None, str | None], message: dict[str, Any],
        timeout: float | None = 30.0) -> dict[str, Any]:
    for reply in stream(target, message, timeout):
        return reply
    fail("the daemon closed the connection without answering", EXIT_UNREACHABLE)


def show_status(target: tuple[str | None, str | None], programs: list[str], as_json: bool) -> None:
    data = ask(target, {"cmd": "status", "programs": programs})["status"]
    if as_json:
        import json

        print(json.dumps(data, indent=2))
    else:
        from workerd.cli.status_view import render_status

        print(render_status(data))
