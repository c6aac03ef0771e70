"""workerctl's side of the control socket: find it, send one request, read replies.

Standard library only, and kept small: `workerctl status` must answer fast, so it
imports nothing of the daemon.
"""

from __future__ import annotations

import errno
import os
import socket
import sys

from workerd.control.protocol import MAX_LINE, decode, default_socket, encode

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any


class Unreachable(Exception):
    """No daemon answers at the socket (exit code 3)."""


class Refused(Exception):
    """A daemon is there but will not serve us (exit code 1)."""


def find_socket(socket_opt: str | None, config_opt: str | None) -> str:
    """-s SOCKET, else the socket named in -c FILE, else $WORKERD_SOCKET, else the default."""
    if socket_opt:
        return socket_opt
    if config_opt:
        return socket_from_config(config_opt)
    return default_socket()


def socket_from_config(path: str) -> str:
    """Read only [daemon].socket from a config file (relative to the file's folder).

    workerctl needs nothing else, so a file that does not parse (a typo elsewhere, an
    edit under way) is scanned line by line for that one key instead of refused.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}; name the socket with -s SOCKET") from None
    try:
        value = _parse_socket(raw)
    except ValueError as exc:  # a TOML or UTF-8 error
        value = _scan_socket(raw.decode(errors="replace"))
        if value is None:
            raise ValueError(f"{path}: {exc}; no [daemon] socket line found either: "
                             "name the socket with -s SOCKET") from None
    if value is None:
        return default_socket()
    return os.path.join(os.path.dirname(os.path.abspath(path)), value)


def _parse_socket(raw: bytes) -> str | None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    daemon = tomllib.loads(raw.decode()).get("daemon")
    value = daemon.get("socket") if isinstance(daemon, dict) else None
    return value if isinstance(value, str) else None


def _scan_socket(text: str) -> str | None:
    """The `socket = "..."` line inside [daemon], found without parsing the rest."""
    import re

    table = re.compile(r"\s*\[\s*([^\]]*?)\s*\]")
    socket_line = re.compile(r"""\s*socket\s*=\s*(?:"([^"\\]*)"|'([^']*)')\s*(?:#.*)?$""")
    in_daemon = False
    for line in text.splitlines():
        header = table.match(line)
        if header:
            in_daemon = header.group(1) == "daemon"
        elif in_daemon and (found := socket_line.match(line)):
            return found.group(1) if found.group(1) is not None else found.group(2)
    return None


def request(path: str, message: dict[str, Any], timeout: float | None) -> Iterator[dict[str, Any]]:
    """Send one request and yield each reply line as it arrives."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            raise Unreachable(f"no daemon answers at {path}") from None
        except PermissionError:
            raise Refused(f"{path}: permission denied") from None
        except OSError as exc:
            if exc.errno in (errno.ENOTSOCK, errno.ECONNREFUSED, errno.ENOENT):
                raise Unreachable(f"no daemon answers at {path}") from None
            raise
        try:
            sock.sendall(encode(message))
        except BrokenPipeError:
            pass  # the daemon answered and closed early (a refusal): read its reason
        buffered = b""
        while True:
            try:
                chunk = sock.recv(1 << 20)
            except TimeoutError:
                raise Unreachable(f"the daemon at {path} did not answer in {timeout:g}s") from None
            if not chunk:
                return
            buffered += chunk
            if len(buffered) > MAX_LINE:
                raise ValueError("reply too long")
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                yield decode(line)
    finally:
        sock.close()
