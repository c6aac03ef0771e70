"""The daemon as a systemd service: sd_notify(3) spoken directly, no libsystemd.

systemd hands a `Type=notify` service NOTIFY_SOCKET (and WATCHDOG_USEC with
`WatchdogSec=`). The daemon says READY=1 once every slot is spawned or failed,
RELOADING=1 then READY=1 around a reload, STOPPING=1 at shutdown, a one-line STATUS=
when it changes (at most once a second), and WATCHDOG=1 from its event loop's Clock: a loop that is stuck stops
pinging and systemd restarts the daemon. Without NOTIFY_SOCKET every call does
nothing; a socket that points nowhere is logged once and the daemon runs on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, MutableMapping

from workerd.core.states import State
from workerd.process.clock import Clock
from workerd.runtime.feed import Settled
from workerd.runtime.program import Program

log = logging.getLogger("workerd")

#: What systemd tells the daemon alone: taken out of the environment the workers inherit.
SERVICE_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
#: STATUS= at most this often: a burst of changes is one update.
STATUS_DELAY = 1.0


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
        #: Set by `follow`: the clock the timers run on and the STATUS= text now.
        self._clock: Clock | None = None
        self._line: Callable[[], str] | None = None
        self._status_due: asyncio.TimerHandle | None = None
        self._stopping = False

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
        """STATUS=stopping stays: no change after it is reported."""
        self._stopping = True
        self._send("STOPPING=1\nSTATUS=stopping")

    def follow(self, clock: Clock, line: Callable[[], str]) -> None:
        """READY=1 with `line()` now; then STATUS= follows `changed`, and the watchdog pings."""
        self._clock, self._line = clock, line
        self.ready(line())
        if self.watchdog_interval is not None:
            log.info("systemd watchdog: pinging every %gs", self.watchdog_interval)
            self._ping = clock.call_later(self.watchdog_interval, self._watchdog)

    def changed(self, _: Settled) -> None:
        """The supervisor's facts changed: STATUS= within STATUS_DELAY (debounced)."""
        if self._clock is not None and self._status_due is None and not self._stopping:
            self._status_due = self._clock.call_later(STATUS_DELAY, self._send_status)

    def _send_status(self) -> None:
        self._status_due = None
        if self._line is not None and not self._stopping:
            self.status(self._line())

    def status(self, text: str) -> None:
        """Sent only when it differs from the last one."""
        if text != self._status:
            self._status = text
            self._send(f"STATUS={text}")

    def _watchdog(self) -> None:
        assert self.watchdog_interval is not None and self._clock is not None
        self._send("WATCHDOG=1")
        self._ping = self._clock.call_later(self.watchdog_interval, self._watchdog)

    def close(self) -> None:
        for timer in (self._ping, self._status_due):
            if timer is not None:
                timer.cancel()
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
    running = target = 0
    others: dict[str, int] = {}
    depths = []
    for program in programs:
        running += program.all_running
        target += program.target
        for slot in program.slots.values():
            if slot.state in (State.STARTING, State.BACKOFF, State.STOPPING, State.FATAL):
                others[slot.state.value] = others.get(slot.state.value, 0) + 1
        reading = program.scale.last_reading if program.scale is not None else None
        if reading is not None:
            depths.append(f"{program.name}: depth {reading.depth}")
    parts = [f"{running}/{target} running", *(f"{n} {state}" for state, n in sorted(others.items())), *depths]
    return ", ".join(parts)
