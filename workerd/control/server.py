"""The daemon's side of the control socket.

The socket file is created with socket_mode already in force (umask around bind),
so there is no moment with looser permissions; every peer is checked with
SO_PEERCRED: root, the daemon's own user and members of socket_group are served.

A client must read what it asked for: at most HIGH_WATER bytes of a reply wait in the
daemon beyond what the kernel holds, and a client that has not read its reply within
REPLY_TIMEOUT is dropped (its buffer goes with it), so clients that ask and never read
cannot pile up the daemon's memory.
"""

from __future__ import annotations

import asyncio
import errno
import grp
import logging
import os
import pwd
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from workerd.control.protocol import MAX_REQUEST, decode, encode

log = logging.getLogger("workerd")

Handler = Callable[
    [dict[str, Any], asyncio.StreamReader, asyncio.StreamWriter], Awaitable[dict[str, Any] | None]
]


#: How long a client may take to send its one request line.
REQUEST_TIMEOUT = 10.0
#: How long a client may take to read its reply before it is dropped.
REPLY_TIMEOUT = 5.0
#: Reply bytes held in the daemon per client before writing waits for the client to read.
HIGH_WATER = 64 * 1024
#: At most one log line per this many seconds about dropped clients.
DROP_LOG_INTERVAL = 60.0


class SocketInUse(Exception):
    """Another live daemon answers on the socket."""


def bind_socket(path: Path, mode: int, gid: int | None) -> socket.socket:
    """Bind the control socket, replacing a stale one and refusing a live one."""
    _ensure_directory(path.parent)
    if path.exists() or path.is_symlink():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)  # stale: its daemon is gone
        except OSError as exc:
            raise OSError(exc.errno, f"{path}: {exc.strerror}") from None
        else:
            raise SocketInUse(f"{path}: socket already served by a live daemon")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o777 & ~mode)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old_umask)
    if gid is not None:
        os.chown(path, -1, gid)
    os.chmod(path, mode)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _ensure_directory(directory: Path) -> None:
    """Create the socket's directory (0755: the socket's own mode guards it), and refuse
    one that another user owns: they could swap our socket for theirs."""
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    owner = directory.stat().st_uid
    if owner not in (0, os.geteuid()):
        raise OSError(errno.EPERM, f"{directory} belongs to uid {owner}, not to us")


def peer_allowed(sock: socket.socket, group_gid: int | None) -> tuple[bool, str]:
    """SO_PEERCRED check; returns (allowed, who) for the log."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", creds)
    who = f"pid {pid} uid {uid}"
    if uid == 0 or uid == os.getuid():
        return True, who
    if group_gid is not None:
        if gid == group_gid:
            return True, who
        try:
            user = pwd.getpwuid(uid).pw_name
            if group_gid in os.getgrouplist(user, gid) or user in grp.getgrgid(group_gid).gr_mem:
                return True, who
        except KeyError:
            pass
    return False, who


class ControlServer:
    def __init__(self, sock: socket.socket, group_gid: int | None, handlers: dict[str, Handler]) -> None:
        self._sock = sock
        self._gid = group_gid
        self._handlers = handlers
        self._server: asyncio.base_events.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._dropped = 0
        self._drop_logged_at: float | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, sock=self._sock, limit=MAX_REQUEST)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        writer.transport.set_write_buffer_limits(high=HIGH_WATER)
        try:
            # Read the request before any answer, even a refusal: a client still
            # sending when the socket closes would see EPIPE instead of the reason.
            too_long = False
            try:
                line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
            except ValueError:  # no newline in the first MAX_REQUEST bytes
                line, too_long = b"", True
            allowed, who = peer_allowed(writer.get_extra_info("socket"), self._gid)
            if not allowed:
                log.warning("control: refused %s (not root, the daemon's user or socket_group)", who)
                writer.write(encode({"ok": False, "error": "permission denied: not allowed to use this socket"}))
                return
            if too_long:
                log.warning("control: refused a request of over %d bytes from %s", MAX_REQUEST, who)
                writer.write(encode({"ok": False, "error": f"request too long (over {MAX_REQUEST} bytes)"}))
                return
            if not line:
                return
            try:
                request = decode(line)
                handler = self._handlers[str(request.get("cmd"))]
            except (ValueError, KeyError):
                writer.write(encode({"ok": False, "error": f"bad request: {line[:200]!r}"}))
                return
            reply = await handler(request, reader, writer)
            if reply is not None:
                writer.write(encode(reply))
            try:
                await asyncio.wait_for(writer.drain(), REPLY_TIMEOUT)
            except asyncio.TimeoutError:
                writer.transport.abort()
                self._drop(who)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug in one command must not take the daemon down
            log.exception("control: request failed")
            try:
                writer.write(encode({"ok": False, "error": "internal error (see the daemon's log)"}))
            except Exception:
                pass
        finally:
            if task is not None:
                self._clients.discard(task)
            writer.close()

    def _drop(self, who: str) -> None:
        """One warning for a burst of dropped clients, not one per client."""
        self._dropped += 1
        now = asyncio.get_running_loop().time()
        if self._drop_logged_at is None or now - self._drop_logged_at >= DROP_LOG_INTERVAL:
            log.warning("control: dropped %d client(s) (the last: %s) that did not read the reply within %gs",
                        self._dropped, who, REPLY_TIMEOUT)
            self._dropped, self._drop_logged_at = 0, now

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._clients):
            task.cancel()
