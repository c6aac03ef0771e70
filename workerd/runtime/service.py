"""The daemon as a systemd service: sd_notify(3) spoken directly, no libsystemd.

systemd hands a `Type=notify` service NOTIFY_SOCKET (and WATCHDOG_USEC with
`WatchdogSec=`). The daemon says READY=1 once every slot is spawned or failed,
RELOADING=1 then READY=1 around a reload, STOPPING=1 at shutdown, a one-line STATUS=
when it changes, and WATCHDOG=1 from its event loop: a loop that is stuck stops
pinging and systemd restarts the daemon. Without NOTIFY_SOCKET every call does
nothing; a socket that points nowhere is logged once and the daemon runs on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Iterable, MutableMapping

from workerd.core.states import State
from workerd.runtime.program import Program

log = logging.getLogger("workerd")

#: What systemd tells the daemon alone: taken out of the environment the workers inherit.
SERVICE_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class ServiceManager:
    """Datagrams to systemd's notify socket, if the daemon was given one."""

    def __init__(self, address: str | None, watchdog_interval: float | None) -> None:
        self.address = address
        #: Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), None: no watchdog.
        self.watchdog_interval = watchdog_interval
        self._sock: socket.socket | None = None
        self._failed = False
        self._status: str | None = None
        self._ping: asyncio.TimerHandle | None = None

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str]) -> ServiceManager:
        """Read and remove the service variables: a worker that inherited them would
        talk to systemd as if it were the daemon."""
        address, usec, pid = (environ.pop(name, None) for name in SERVICE_VARIABLES)
        interval = None
        if usec and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            interval = int(usec) / 2_000_000
        return cls(address or None, interval)

    @property
    def active(self) -> bool:
        return self.address is not None

    def ready(self, status: str) -> None:
        self._status = status
        self._send(f"READY=1\nSTATUS={status}")

    def reloading(self) -> None:
        """MONOTONIC_USEC lets systemd (253+) tell this reload from an earlier one."""
        self._send(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self) -> None:
        self._send("STOPPING=1\nSTATUS=stopping")

    def status(self, text: str) -> None:
        """Sent only when it differs from the last one."""
        if text != self._status:
            self._status = text
            self._send(f"STATUS={text}")

    def start_watchdog(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.active and self.watchdog_interval is not None:
            log.info("systemd watchdog: pinging every %gs", self.watchdog_interval)
            self._ping = loop.call_later(self.watchdog_interval, self._watchdog, loop)

    def _watchdog(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.watchdog_interval is not None
        self._send("WATCHDOG=1")
        self._ping = loop.call_later(self.watchdog_interval, self._watchdog, loop)

    def close(self) -> None:
        if self._ping is not None:
            self._ping.cancel()
        if self._sock is not None:
            self._sock.close()

    def _send(self, message: str) -> None:
        if self.address is None or self._failed:
            return
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(message.encode(), _unix_address(self.address))
        except (OSError, ValueError) as exc:
            self._failed = True
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            log.warning("NOTIFY_SOCKET=%s: cannot notify systemd (%s); running on without it", self.address, why)


def _unix_address(address: str) -> str | bytes:
    """`@name` is a socket in the abstract namespace; anything else must be a path."""
    if address.startswith("@"):
        return b"\0" + address[1:].encode()
    if not address.startswith("/"):
        raise ValueError("not an absolute path or an @abstract name")
    return address


def status_line(programs: Iterable[Program]) -> str:
    """'12/12 running, 1 backoff, email: depth 340': what `systemctl status` shows."""
    running = wanted = 0
    others: dict[str, int] = {}
    depths = []
    for program in programs:
        running += program.running
        wanted += program.wanted
        for slot in program.slots.values():
            if slot.state in (State.STARTING, State.BACKOFF, State.STOPPING, State.FATAL):
                others[slot.state.value] = others.get(slot.state.value, 0) + 1
        reading = program.scale.last_reading if program.scale is not None else None
        if reading is not None:
            depths.append(f"{program.name}: depth {reading.depth}")
    parts = [f"{running}/{wanted} running", *(f"{n} {state}" for state, n in sorted(others.items())), *depths]
    return ", ".join(parts)
