"""workerctl's side of the control socket: find it, send one request, read replies.

Standard library only, and kept small: `workerctl status` must answer fast, so it
imports nothing of the daemon.
"""

from __future__ import annotations

import errno
import os
import socket
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

from workerd.control.protocol import MAX_LINE, decode, default_socket, encode


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
    env = os.environ.get("WORKERD_SOCKET")
    if env:
        return env
    return default_socket()


def socket_from_config(path: str) -> str:
    """Read only [daemon].socket from a config file (relative to the file's folder)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: {exc}") from None
    value = data.get("daemon", {}).get("socket")
    if not isinstance(value, str):
        return default_socket()
    return os.path.join(os.path.dirname(os.path.abspath(path)), value)


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
            except socket.timeout:
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
