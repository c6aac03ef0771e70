"""Talking to workerd from a Python worker: standard library only, nothing else of workerd.

    from workerd import worker

    worker.ready()                 # with ready = "notify": the worker is running
    while True:
        job = queue.get()
        with worker.job():         # BUSY=1 ... BUSY=0: busy/idle in status, job timings
            handle(job)
        worker.watchdog()          # with watchdog: "still alive"

It speaks systemd's sd_notify protocol to $NOTIFY_SOCKET, so the same code is right under
systemd too (READY, STATUS, WATCHDOG and STOPPING are systemd's own; BUSY is workerd's,
and systemd ignores it). Without NOTIFY_SOCKET every call does nothing. A report that
cannot be sent never raises into the worker's code: its job matters more than the report.
"""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["busy", "idle", "job", "notify", "ready", "status", "stopping", "watchdog", "watchdog_interval"]

_sock: socket.socket | None = None


def notify(message: str) -> bool:
    """Send one sd_notify datagram ("KEY=VALUE" lines); False if it was not sent."""
    global _sock
    target = os.environ.get("NOTIFY_SOCKET")
    if not target:
        return False
    # An abstract address is written with a leading '@' and sent with a leading NUL.
    address = "\0" + target[1:] if target.startswith("@") else target
    try:
        if _sock is None:
            _sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        _sock.sendto(message.encode(), address)
    except OSError:
        return False
    return True


def ready() -> bool:
    """The worker is ready to work: with ready = "notify", it now counts as running."""
    return notify("READY=1")


def busy() -> bool:
    """A job starts."""
    return notify("BUSY=1")


def idle() -> bool:
    """The job is done."""
    return notify("BUSY=0")


def watchdog() -> bool:
    """Still alive: with `watchdog`, send it more often than watchdog_interval() asks."""
    return notify("WATCHDOG=1")


def status(text: str) -> bool:
    """One line shown in `workerctl status`."""
    return notify("STATUS=" + " ".join(text.splitlines()))


def stopping() -> bool:
    """The worker drains on its own (shown in status)."""
    return notify("STOPPING=1")


def watchdog_interval() -> float | None:
    """Seconds between two watchdog() calls: half of $WATCHDOG_USEC, which workerd sets
    for a program with `watchdog` (as systemd does with WatchdogSec); None without one."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    return int(usec) / 2_000_000 if usec.isdigit() and int(usec) > 0 else None


@contextmanager
def job() -> Iterator[None]:
    """BUSY=1 on entry and BUSY=0 on exit, also when the job raises."""
    busy()
    try:
        yield
    finally:
        idle()
