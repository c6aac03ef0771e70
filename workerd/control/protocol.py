"""The control protocol: one JSON object per line over a Unix stream socket.

A client sends one request `{"cmd": ..., ...}`; the daemon answers with one line
`{"ok": true, ...}` or `{"ok": false, "error": "..."}`, except `logs` with
`follow`, which streams `{"data": "..."}` lines until the client hangs up.
Standard library only, and not even typing or pathlib (their import is a tenth of
`workerctl status`): `workerctl` imports this and nothing of the daemon.
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Exit codes shared by workerd and workerctl (SPEC).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

#: Longest response line accepted (a status of many processes is the largest).
MAX_LINE = 16 * 1024 * 1024
#: Longest request line accepted: a request names a command and a few programs.
MAX_REQUEST = 64 * 1024


def default_socket() -> str:
    """$WORKERD_SOCKET; else /run/workerd/workerd.sock for root; else $XDG_RUNTIME_DIR/workerd.sock.

    $WORKERD_SOCKET lets one config-less setting name the socket for both the daemon
    and workerctl (systemd's workerd@APP units set it to /run/workerd/APP.sock).
    Without an absolute XDG_RUNTIME_DIR (cron, su, some containers) it is
    /tmp/workerd-<uid>/workerd.sock (the daemon refuses that directory if another user owns it).
    """
    named = os.environ.get("WORKERD_SOCKET")
    if named:
        return named
    uid = os.geteuid()
    if uid == 0:
        return "/run/workerd/workerd.sock"
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime_dir):
        return os.path.join(runtime_dir, "workerd.sock")
    return f"/tmp/workerd-{uid}/workerd.sock"


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError("a message must be a JSON object")
    return message
