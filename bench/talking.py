"""Metrics 13 and 14, workerd only (supervisord has no notify socket, no readiness and no
rolling restart): the notify socket's throughput, and a rolling restart's duration."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from daemons import Daemon, Program
from harness import N_WORKERS, Ctx, Metric, Row, cpu_delta, cpu_map
from procs import BenchError, wait_for

WORKERD_ONLY = "workerd only: supervisord has no notify socket (no equivalent), so its column is —"
#: Each of the N_WORKERS workers sends this many datagrams per second (BUSY=1, BUSY=0, ...).
RATE_HZ = 100
ROLLING_WORKERS = 10
#: The rolling metric's workers say READY=1 this long after they start.
READINESS_S = 1.0

#: Waits for $1 to exist, then sends BUSY=1/BUSY=0 alternately at RATE_HZ for $2 seconds
#: (absolute deadlines, so the rate holds), never blocking (a datagram the kernel refuses
#: is counted, not retried), and writes "sent refused" to $3.<its pid>.
BUSY_IDLE_PY = f"""\
import os, socket, sys, time
go, seconds, out = sys.argv[1], float(sys.argv[2]), sys.argv[3] + "." + str(os.getpid())
while not os.path.exists(go):
    time.sleep(0.01)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
path = os.environ["NOTIFY_SOCKET"]
messages = (b"BUSY=1", b"BUSY=0")
sent = refused = 0
start = time.monotonic()
deadline = start + seconds
step = 1.0 / {RATE_HZ}
while True:
    now = time.monotonic()
    if now >= deadline:
        break
    try:
        s.sendto(messages[sent & 1], socket.MSG_DONTWAIT, path)
        sent += 1
    except BlockingIOError:
        refused += 1
    nxt = start + (sent + refused) * step
    if nxt > now:
        time.sleep(nxt - now)
with open(out + ".tmp", "w") as f:
    f.write(f"{{sent}} {{refused}}")
os.rename(out + ".tmp", out)
time.sleep(3600)
"""

#: Says READY=1 after READINESS_S, then sleeps; exits at once on TERM.
READY_LATE_PY = f"""\
import os, socket, time
time.sleep({READINESS_S})
socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
time.sleep(3600)
"""


def m_notify_rate(ctx: Ctx, kind: str) -> dict[str, float | None]:
    """N_WORKERS workers each send BUSY/IDLE at RATE_HZ: datagrams handled per second,
    the daemon's CPU meanwhile, and what the kernel took but the daemon did not count."""
    if kind != "workerd":
        ctx.note(kind, f"notify_rate: {WORKERD_ONLY}")
        return {"notify_rate_s": None, "notify_cpu_pct": None, "notify_lost": None, "notify_refused": None}
    script = ctx.tmp / "busy_idle.py"
    script.write_text(BUSY_IDLE_PY)
    seconds = 10.0 if ctx.quick else 30.0
    go, out = ctx.tmp / "notify.go", ctx.tmp / "notify.out"
    d = ctx.new_daemon(kind, [Program("w", f"{sys.executable} {script} {go} {seconds:g} {out}", N_WORKERS)])
    d.start()
    try:
        wait_for(f"{N_WORKERS} workers", lambda: _running(d) == N_WORKERS or None, timeout=60, interval=0.2,
                 alive=d.alive)
        before = d.status_json()["daemon"]["notify"]["received"]
        c0, t0 = cpu_map([d.pid]), time.perf_counter()
        go.touch()
        time.sleep(seconds)
        c1, t1 = cpu_map([d.pid]), time.perf_counter()
        # each worker writes its counts once its window ends, to a file named by its pid
        pids = [p["pid"] for p in d.status_json()["programs"][0]["processes"]]
        wait_for("the workers' counts", lambda: all(_count_file(out, pid).exists() for pid in pids) or None,
                 timeout=30, interval=0.05, alive=d.alive)
        sent = refused = 0
        for pid in pids:
            s, r = (int(x) for x in _count_file(out, pid).read_text().split())
            sent, refused = sent + s, refused + r
        time.sleep(0.5)  # the last datagrams are read
        received = d.status_json()["daemon"]["notify"]["received"] - before
        ctx.detail(kind, "notify_sent", sent)
        return {"notify_rate_s": received / (t1 - t0), "notify_cpu_pct": cpu_delta(c0, c1) / (t1 - t0) * 100,
                "notify_lost": sent - received, "notify_refused": refused}
    finally:
        ctx.release(d)


def _running(d: Daemon) -> int | None:
    """Program w's running count, None while the daemon does not answer yet."""
    try:
        return int(d.status_json()["programs"][0]["running"])
    except BenchError:
        return None


def _count_file(out: Path, pid: int) -> Path:
    return out.with_name(f"{out.name}.{pid}")


def m_rolling_restart(ctx: Ctx, kind: str) -> dict[str, float | None]:
    """`workerctl restart --rolling` of ROLLING_WORKERS workers that say READY=1 after
    READINESS_S: wall time, against the floor of one readiness after another."""
    if kind != "workerd":
        ctx.note(kind, f"rolling_restart: {WORKERD_ONLY}")
        return {"rolling_s": None, "rolling_floor_s": None}
    script = ctx.tmp / "ready_late.py"
    script.write_text(READY_LATE_PY)
    program = Program("w", f"{sys.executable} {script}", ROLLING_WORKERS, start_seconds=None,
                      keys=(("ready", '"notify"'), ("stop_timeout", '"5s"')))
    d = ctx.new_daemon(kind, [program])
    d.start()
    try:
        wait_for(f"{ROLLING_WORKERS} ready workers",
                 lambda: _running(d) == ROLLING_WORKERS or None, timeout=60, interval=0.2, alive=d.alive)
        times = []
        for _ in range(1 if ctx.quick else 3):
            t0 = time.perf_counter()
            r = d.ctl("restart", "--rolling", "w", timeout=120)
            if r.returncode != 0:
                raise BenchError(f"restart --rolling: {r.stderr.strip()[:300]}")
            times.append(time.perf_counter() - t0)
        return {"rolling_s": statistics.median(times), "rolling_floor_s": ROLLING_WORKERS * READINESS_S}
    finally:
        ctx.release(d)


METRICS = [
    Metric("notify_rate", "13. notify datagrams (workerd only)", m_notify_rate, [
        Row("notify_rate_s", f"{N_WORKERS} workers each sending BUSY=1/BUSY=0 at {RATE_HZ} Hz to the notify "
            "socket, over 30 s (10 s with --quick): datagrams handled per second; workerd only", "/s",
            "{:.0f}", "higher", "≥ 9,500/s (10,000 offered)", lambda w, s: w >= 9500),
        Row("notify_cpu_pct", "… daemon CPU meanwhile", "% core", "{:.1f}", "lower", "< 50 %",
            lambda w, s: w < 50),
        Row("notify_lost", "… sent by the workers and taken by the kernel, but not counted by the daemon",
            "", "{:.0f}", "lower", "0", lambda w, s: w == 0),
        Row("notify_refused", "… refused by the kernel (socket buffer full; the sender may retry)", "",
            "{:.0f}", "lower"),
    ]),
    Metric("rolling_restart", "14. rolling restart (workerd only)", m_rolling_restart, [
        Row("rolling_s", f"`workerctl restart --rolling` of {ROLLING_WORKERS} workers that say READY=1 "
            f"{READINESS_S:g} s after they start (median of 3, 1 with --quick); workerd only", "s", "{:.2f}",
            "lower", f"≤ {ROLLING_WORKERS * READINESS_S * 1.1:g} s (10 × readiness + 10 %)",
            lambda w, s: w <= ROLLING_WORKERS * READINESS_S * 1.1),
        Row("rolling_floor_s", "… the floor: one readiness after another", "s", "{:.1f}"),
    ]),
]
