"""Metric 15, workerd only (supervisord cannot be a Type=notify service): the daemon under
systemd's protocol, with a datagram socket standing in for systemd's NOTIFY_SOCKET."""

from __future__ import annotations

import socket
import time

from daemons import Program
from harness import N_WORKERS, Ctx, Metric, Row, count_workers, cpu_delta, cpu_map
from procs import wait_for

#: The watchdog period asked of the daemon: a ping every half of it, far more often
#: than the shipped unit's WatchdogSec=30 asks, to show what the pings cost.
WATCHDOG_S = 2.0


def m_systemd(ctx: Ctx, kind: str) -> dict[str, float | None]:
    """Popen -> READY=1 with N_WORKERS workers; then idle CPU and datagrams sent while
    the watchdog pings every WATCHDOG_S / 2."""
    if kind != "workerd":
        ctx.note(kind, "systemd: workerd only: supervisord does not speak sd_notify (no equivalent)")
        return {"systemd_ready_s": None, "systemd_idle_cpu_pct": None, "systemd_datagrams_min": None}
    address = ctx.tmp / "systemd.sock"
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind(str(address))
    d = ctx.new_daemon(kind, [Program("w", f"/bin/sh {ctx.scripts['sleep']}", N_WORKERS)])
    d.env = {"NOTIFY_SOCKET": str(address), "WATCHDOG_USEC": str(int(WATCHDOG_S * 1_000_000))}
    try:
        systemd.settimeout(60)
        t0 = d.start()
        while b"READY=1" not in systemd.recv(4096):
            pass
        ready = time.perf_counter() - t0
        wait_for(f"{N_WORKERS} workers", lambda: count_workers(d, "sleep") == N_WORKERS or None, timeout=60,
                 alive=d.alive)
        time.sleep(2.0)  # as idle_cpu: settle first
        systemd.setblocking(False)
        _drain(systemd)
        seconds = 10.0 if ctx.quick else 30.0
        c0, t1 = cpu_map([d.pid]), time.perf_counter()
        time.sleep(seconds)
        c2, t2 = cpu_map([d.pid]), time.perf_counter()
        sent = _drain(systemd)
        return {"systemd_ready_s": ready, "systemd_idle_cpu_pct": cpu_delta(c0, c2) / (t2 - t1) * 100,
                "systemd_datagrams_min": sent / (t2 - t1) * 60}
    finally:
        ctx.release(d)
        systemd.close()


def _drain(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            sock.recv(4096)
        except BlockingIOError:
            return count
        count += 1


METRICS = [
    Metric("systemd", "15. under systemd's notify protocol (workerd only)", m_systemd, [
        Row("systemd_ready_s", f"daemon Popen → READY=1 on NOTIFY_SOCKET, {N_WORKERS} workers (every slot "
            "spawned); workerd only", "s", "{:.3f}", "lower"),
        Row("systemd_idle_cpu_pct", f"… then daemon CPU at idle with the watchdog pinging every {WATCHDOG_S / 2:g} s, "
            "over 30 s (10 s with --quick)", "% core", "{:.3f}", "lower", "< 0.1 %", lambda w, s: w < 0.1),
        Row("systemd_datagrams_min", "… datagrams sent to systemd per minute meanwhile (the pings; STATUS= only "
            "when it changes)", "/min", "{:.0f}", "lower", f"≤ {60 / (WATCHDOG_S / 2):g}",
            lambda w, s: w <= 60 / (WATCHDOG_S / 2) + 1),
    ]),
]
