"""Metrics 9 and 10, workerd only (supervisord has no watched limits): CPU with 100
workers under watched limits, and a memory limit crossed -> the worker restarted."""
from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

from daemons import Program
from harness import (
    HOG_LIMIT,
    N_WORKERS,
    Ctx,
    Metric,
    MiB,
    Row,
    Value,
    count_workers,
    cpu_delta,
    cpu_map,
)
from procs import (
    POLL,
    BenchError,
    ChildWatcher,
    median,
    read_stat,
    wait_for,
)

#: [daemon] sample_interval of both limit metrics (workerd's default).
SAMPLE_INTERVAL = 1.0


# --------------------------------------------------------------------------- 9. limits CPU
WORKERD_ONLY = "workerd only: supervisord has no watched limits (no equivalent), so its column is —"


def m_limits_cpu(ctx: Ctx, kind: str) -> dict[str, Value]:
    """Daemon CPU with N_WORKERS sleepers whose program has watched limits (memory and
    cpu_percent, never reached), sampled every SAMPLE_INTERVAL: the watcher's cost."""
    if kind != "workerd":
        ctx.note(kind, f"limits_cpu: {WORKERD_ONLY}")
        return {"limits_cpu_pct": None, "limits_cpu_helpers_pct": None, "limits_cpu_idle_pct": None}
    limits = (("memory", '"512MiB"'), ("cpu_percent", "90"))
    d, _, ready = ctx.launch_sleepers(kind, limits, {"sample_interval": f'"{SAMPLE_INTERVAL:g}s"'})
    try:
        st = d.status_json()
        prog = next(p for p in st.get("programs", []) if p.get("name") == "w")
        if not {"memory", "cpu_percent"} <= set(prog.get("limits") or {}):
            raise BenchError(f"status does not show the limits: {prog.get('limits')}")
        ctx.detail(kind, "limits_cpu_status_limits", prog.get("limits"))
        ctx.detail(kind, "limits_enforcement", st.get("daemon", {}).get("limits"))
        rest = ready + 2.0 - time.perf_counter()  # as idle_cpu: 2 s after the workers are up
        if rest > 0:
            time.sleep(rest)
        dur = 10.0 if ctx.quick else 30.0
        helpers = d.helpers({"sleep"})
        c0, h0, t0 = cpu_map([d.pid]), cpu_map(helpers), time.perf_counter()
        time.sleep(dur)  # the harness does nothing meanwhile
        c1, h1, t1 = cpu_map([d.pid]), cpu_map(helpers), time.perf_counter()
        d.check_alive()
        n = count_workers(d, "sleep")
        if n != N_WORKERS:
            ctx.note(kind, f"limits CPU: {n} workers running at the end, not {N_WORKERS}")
        ctx.detail(kind, "limits_cpu_window_s", t1 - t0)
        idle = ctx.idle_cpu_pct.get(kind)
        if idle is None:
            ctx.note(kind, "limits_cpu: run idle_cpu in the same run (e.g. --only "
                           "idle_cpu,limits_cpu) for the without-limits comparison row")
        return {"limits_cpu_pct": cpu_delta(c0, c1) / (t1 - t0) * 100,
                "limits_cpu_helpers_pct": cpu_delta(h0, h1) / (t1 - t0) * 100,
                "limits_cpu_idle_pct": idle}
    finally:
        ctx.release(d)


# --------------------------------------------------------------------------- 10. limit restart
def _open_fifo(fifo: Path, timeout: float = 10.0) -> None:
    """Write one line to the FIFO once a reader has it open (O_NONBLOCK: ENXIO until then)."""
    deadline = time.perf_counter() + timeout
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:
            if time.perf_counter() > deadline:
                raise BenchError(f"no worker opened {fifo.name} within {timeout:g} s") from None
            time.sleep(0.005)
    try:
        os.write(fd, b"go\n")
    finally:
        os.close(fd)


def m_limit_restart(ctx: Ctx, kind: str) -> dict[str, Value]:
    """A worker's RSS crosses its memory limit (time stamped by the worker) → the worker
    is gone (SIGTERM by the daemon; exit seen in /proc) → its replacement is running."""
    if kind != "workerd":
        ctx.note(kind, f"limit_restart: {WORKERD_ONLY}")
        return {k: None for k in ("limit_stop_median_ms", "limit_stop_max_ms",
                                  "limit_restart_median_ms", "limit_restart_max_ms",
                                  "limit_respawn_median_ms")}
    reps = 3 if ctx.quick else 5
    fifo, out = ctx.tmp / "hog.fifo", ctx.tmp / "hog.out"
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    py = sys.executable or "/usr/bin/python3"
    comm = os.path.basename(py)[:15]  # what /proc shows once the worker has exec'd python
    prog = Program("hog", f"{py} {ctx.scripts['hog']} {fifo} {out}", 1,
                   limits=(("memory", f'"{HOG_LIMIT // MiB}MiB"'),))
    d = ctx.new_daemon(kind, [prog], {"sample_interval": f'"{SAMPLE_INTERVAL:g}s"'})
    # A limit hit within start_seconds (0) + 2 sample_intervals of a start counts as a crash
    # (backoff): trigger only once the worker is older than that. The wait from crossing to
    # the next sample depends on where in the sampling period the limit is crossed; the
    # sampling timer is in phase with the replacement's start (both follow a sample), so the
    # triggers are placed at fractions (k + 0.5) / reps of a sample_interval after that, in
    # a shuffled order: the median then estimates the average wait (~half an interval), the
    # max nears a full one. Otherwise every trigger would land at the same phase.
    phases = [(k + 0.5) / reps for k in range(reps)]
    random.Random(4).shuffle(phases)
    stops: list[float] = []
    restarts: list[float] = []
    crossed_rss: list[int] = []
    try:
        d.start()
        w = ChildWatcher(d.pid, settled_comm=comm)
        (worker,), t_up = wait_for("the hog worker", lambda: list(w.workers(comm)) or None,
                                   timeout=30, interval=0.005, alive=d.alive)
        for i, phase in enumerate(phases):
            rest = t_up + (2 + phase) * SAMPLE_INTERVAL - time.perf_counter()
            if rest > 0:
                time.sleep(rest)
            d.note_tree()
            out.unlink(missing_ok=True)
            _open_fifo(fifo)
            t_stop: float | None = None
            t_run: float | None = None
            new: int | None = None
            timeout = 10 * SAMPLE_INTERVAL + 10
            deadline = time.monotonic() + timeout
            while t_run is None:
                now = time.monotonic()
                if t_stop is None:
                    ps = read_stat(worker)
                    if ps is None or ps.state == "Z":
                        t_stop = now
                if t_stop is not None:
                    kids = w.workers(comm)
                    new = next((pid for pid in kids if pid != worker), None)
                    if new is not None:
                        t_run = now
                        break
                if now > deadline:
                    raise BenchError(f"hog #{i + 1} (pid {worker}): "
                                     f"{'no replacement' if t_stop else 'not stopped'} "
                                     f"{timeout:g} s after the trigger")
                if not d.alive():
                    raise BenchError(f"{kind} exited during the limit restart test")
                time.sleep(POLL)
            try:
                t_cross_s, pid_s, rss_s = out.read_text().split()
            except (OSError, ValueError):
                raise BenchError(f"hog #{i + 1} (pid {worker}) was stopped before it wrote "
                                 "the time its RSS crossed the limit") from None
            if int(pid_s) != worker:
                raise BenchError(f"{out.name} is from pid {pid_s}, not {worker}")
            assert t_stop is not None and new is not None
            t_cross = float(t_cross_s)
            stops.append(t_stop - t_cross)
            restarts.append(t_run - t_cross)
            crossed_rss.append(int(rss_s))
            ctx.log(f"  hog #{i + 1} (trigger at phase {phase:.1f}): RSS "
                    f"{int(rss_s) / MiB:.0f} MiB → stopped after "
                    f"{stops[-1] * 1000:.0f} ms, replacement running after {restarts[-1] * 1000:.0f} ms")
            worker, t_up = new, time.perf_counter()
        d.check_alive()
        # the daemon's own account: every restart was for the memory limit
        st = d.status_json()
        proc = next(p for p in st.get("programs", []) if p.get("name") == "hog")["processes"][0]
        ctx.detail(kind, "limit_restart_status", {k: proc.get(k) for k in (
            "state", "restarts", "last_limit", "last_exit", "reason")})
        if not str(proc.get("last_limit") or "").startswith("memory"):
            raise BenchError(f"status shows last_limit={proc.get('last_limit')!r}, not a memory limit")
        if proc.get("restarts") != reps or proc.get("state") != "running":
            ctx.note(kind, f"limit restart: status shows {proc.get('restarts')} restarts "
                           f"(expected {reps}), state {proc.get('state')}")
    finally:
        ctx.release(d)
        fifo.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
    ctx.detail(kind, "limit_stop_s_all", stops)
    ctx.detail(kind, "limit_restart_s_all", restarts)
    ctx.detail(kind, "limit_crossed_rss_all", crossed_rss)
    ctx.detail(kind, "limit_trigger_phases", phases)
    respawn = [r - s for r, s in zip(restarts, stops, strict=True)]
    return {"limit_stop_median_ms": median(stops) * 1000, "limit_stop_max_ms": max(stops) * 1000,
            "limit_restart_median_ms": median(restarts) * 1000,
            "limit_restart_max_ms": max(restarts) * 1000,
            "limit_respawn_median_ms": median(respawn) * 1000}


METRICS: list[Metric] = [
    Metric("limits_cpu", "9. CPU with 100 workers under watched limits (workerd only)",
           m_limits_cpu, [
        Row("limits_cpu_pct", "daemon CPU, 100 sleeping workers with watched limits (memory 512MiB, "
            "cpu_percent 90; sample_interval 1 s), over 30 s (10 s with --quick); workerd only, "
            "supervisord has no equivalent", "% core", "{:.4f}", "lower", "< 1 %",
            lambda w, s: w < 1),
        Row("limits_cpu_helpers_pct", "… helper children CPU", "% core", "{:.4f}", "lower"),
        Row("limits_cpu_idle_pct", "… for comparison: the same daemon without limits (the idle_cpu "
            "row, when it ran in the same run)", "% core", "{:.4f}", "lower"),
    ]),
    Metric("limit_restart", "10. memory limit crossed → restart (workerd only)", m_limit_restart, [
        Row("limit_stop_median_ms", "worker's RSS crosses its 64MiB memory limit (sample_interval 1 s) "
            "→ worker gone (SIGTERM by the daemon), median of 5 (3 with --quick); workerd only, "
            "supervisord has no equivalent", "ms", "{:.0f}", "lower",
            "report (no goal set; bounded by sample_interval + stop)"),
        Row("limit_stop_max_ms", "… max", "ms", "{:.0f}", "lower"),
        Row("limit_restart_median_ms", "… crossed → replacement running, median", "ms", "{:.0f}",
            "lower"),
        Row("limit_restart_max_ms", "… max", "ms", "{:.0f}", "lower"),
        Row("limit_respawn_median_ms", "… worker gone → replacement running, median", "ms",
            "{:.1f}", "lower"),
    ]),
]
