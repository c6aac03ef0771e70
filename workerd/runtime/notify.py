"""The notify socket: the workers' sd_notify datagrams in, `Notified` events out.

One AF_UNIX datagram socket, next to the control socket, passed to every worker as
NOTIFY_SOCKET; any library that talks to systemd (sd_notify(3), python-systemd,
`sdnotify`, gunicorn's and uvicorn's systemd support) talks to it unchanged. Each
datagram carries its sender's credentials (SO_PASSCRED, checked by the kernel), and it
is attributed to the worker whose session the sender is in; that is what protects the
socket, which is world-writable like systemd's own, so workers running as other users
can write to it. A datagram from any other process, malformed, oversized or passing
descriptors is dropped and counted, never fatal and never logged one by one (the
first drop of each kind is logged once). The one descriptor the protocol passes is
BARRIER=1's (sd_notify_barrier(3), which `systemd-notify` sends by default): closing it,
as every passed descriptor is closed, is the answer the sender waits for.

Read on the loop when readable, at most BATCH datagrams per wakeup, so a flood cannot
starve the rest of the daemon; no thread, no polling. Before a slot's deadline is acted
on, what waits is read first (`drain`, see Deadlines in process/clock.py): a WATCHDOG=1
sent in time counts even when a stalled daemon finds it and the expired deadline due
together.
"""

from __future__ import annotations

import array
import asyncio
import logging
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path

from workerd.core.events import Notified

log = logging.getLogger("workerd")

#: sd_notify messages are a few dozen bytes; anything longer is not one of ours.
MAX_DATAGRAM = 4096
#: Datagrams read per wakeup before the loop gets a turn.
BATCH = 256
#: Datagrams read at most by one drain before a deadline (a stall's backlog fits).
DRAIN = 16 * BATCH
#: STATUS= text kept (status shows one line).
MAX_STATUS = 200
#: The receive buffer asked for: a burst of 100 workers' messages fits in it while the
#: daemon waits for a core (kernel memory, used only while datagrams wait).
RECEIVE_BUFFER = 16 << 20

_UCRED = struct.Struct("3i")
#: SO_RCVBUFFORCE (Linux), which the socket module does not name.
_SO_RCVBUFFORCE = 33
_MAX_FDS = 16
_ANCILLARY = socket.CMSG_SPACE(_UCRED.size) + socket.CMSG_SPACE(_MAX_FDS * 4)
_FLAG_VALUES = {"1": True, "0": False}
#: A barrier: its descriptor, closed on arrival, is the whole answer.
BARRIER = b"BARRIER=1"


class Malformed(ValueError):
    """Not an sd_notify message."""


def parse(data: bytes, pid: int) -> Notified:
    """One datagram -> the assignments workerd understands; others (MAINPID=, ERRNO=,
    EXTEND_TIMEOUT_USEC=, RELOADING=...) are ignored, as systemd ignores what it does
    not know. Raises Malformed."""
    if b"\0" in data:
        raise Malformed("NUL byte")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("not UTF-8") from None
    fields: dict[str, str] = {}
    for line in text.split("\n"):
        if line:
            key, sep, value = line.partition("=")
            if not sep or not key:
                raise Malformed("a line without KEY=")
            fields[key] = value
    status = fields.get("STATUS")
    if status is not None:
        status = "".join(c if c.isprintable() else " " for c in status)[:MAX_STATUS]
    return Notified(
        pid,
        ready=fields.get("READY") == "1",
        watchdog=fields.get("WATCHDOG") == "1",
        busy=_FLAG_VALUES.get(fields.get("BUSY", "")),
        status=status,
        stopping=fields.get("STOPPING") == "1",
    )


class NotifySocket:
    def __init__(self, path: Path, attribute: Callable[[int], int | None], deliver: Callable[[Notified], None]) -> None:
        """`attribute(pid)`: the worker pid a sender belongs to, or None; `deliver` takes
        the event, its pid being that worker's."""
        self.path = path
        self._attribute = attribute
        self._deliver = deliver
        self._sock: socket.socket | None = None
        self.received = 0
        #: Datagrams dropped, by why: foreign, malformed, oversized, descriptors.
        self.dropped: dict[str, int] = {}

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind (replacing a stale file; the control socket already proved no live daemon
        uses this directory) and start reading. OSError when it cannot."""
        self.path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            sock.bind(str(self.path))
            os.chmod(self.path, 0o666)  # any worker's user may send; credentials say who
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            _grow_buffer(sock)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._loop = loop
        loop.add_reader(sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        self._read(BATCH)

    def drain(self) -> None:
        """Read what waits now (bounded by DRAIN), before a deadline is acted on."""
        if self._sock is not None:
            self._read(DRAIN)

    def _read(self, most: int) -> None:
        assert self._sock is not None
        for _ in range(most):
            try:
                data, ancillary, flags, _ = self._sock.recvmsg(MAX_DATAGRAM + 1, _ANCILLARY, socket.MSG_CMSG_CLOEXEC)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.error("notify socket: %s", exc.strerror)
                return
            self._handle(data, ancillary, flags)

    def _handle(self, data: bytes, ancillary: list[tuple[int, int, bytes]], flags: int) -> None:
        self.received += 1
        pid, uid, gid, passed_fds = None, -1, -1, False
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, uid, gid = _UCRED.unpack_from(payload)
            elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                passed_fds = True
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                for fd in fds:
                    os.close(fd)  # FDSTORE= is not supported: never keep what was passed
        if data == BARRIER and not flags & socket.MSG_CTRUNC:
            return None  # answered: its descriptor is closed; nothing else to say
        if passed_fds or flags & socket.MSG_CTRUNC:
            return self._drop("descriptors")
        if len(data) > MAX_DATAGRAM or flags & socket.MSG_TRUNC:
            return self._drop("oversized")
        worker = self._attribute(pid) if pid is not None and _is_whose(pid, uid, gid) else None
        if worker is None:
            return self._drop("foreign")
        try:
            event = parse(data, worker)
        except Malformed:
            return self._drop("malformed")
        self._deliver(event)

    def _drop(self, why: str) -> None:
        if why not in self.dropped:
            log.warning("notify socket: dropping %s datagrams (counted in status and /metrics)", why)
        self.dropped[why] = self.dropped.get(why, 0) + 1

    def close(self) -> None:
        if self._sock is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
            self.path.unlink(missing_ok=True)


def _is_whose(pid: int, uid: int, gid: int) -> bool:
    """The credentials' user and group are the named process's own. The kernel fills
    them in truly, but lets a process with CAP_SYS_ADMIN (root) claim any pid: one that
    claims a worker's pid with its own uid (as `systemd-notify --pid` does) is refused
    when the worker runs as another user. Root can claim the uid too: nothing tells a
    root process's datagram from the worker's (docs/talking-to-workers.md, "Who may
    speak for a worker")."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            lines = {line.partition(b":")[0]: line.split()[1:4] for line in f if line[:4] in (b"Uid:", b"Gid:")}
    except OSError:
        return False
    return str(uid).encode() in lines.get(b"Uid", ()) and str(gid).encode() in lines.get(b"Gid", ())


def _grow_buffer(sock: socket.socket) -> None:
    """A bigger receive buffer, past the system's cap where root may (SO_RCVBUFFORCE)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, RECEIVE_BUFFER)
    except OSError:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        except OSError:
            pass  # the default still works; a flood may lose more
