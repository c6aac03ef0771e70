"""Metrics 1-5 and 7: start, memory, idle CPU, status, restart after SIGKILL, graceful
stop, each run on both daemons (most on the shared 100-worker fixture)."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import psutil
from daemons import Program
from harness import (
    N_WORKERS,
    Ctx,
    Metric,
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
    percentile,
    read_cmdline,
    scan_all,
    wait_for,
)


# --------------------------------------------------------------------------- 1. start
def m_start(ctx: Ctx, kind: str) -> dict[str, Value]:
    reps = 1 if ctx.quick else 3
    times = []
    for i in range(reps):
        d, t = ctx.start_sleepers(kind)
        times.append(t)
        ctx.log(f"  start #{i + 1}: {t * 1000:.0f} ms")
    ctx.detail(kind, "start_s_all", times)
    if kind == "workerd":
        try:
            st = d.status_json()
            dpid = st.get("daemon", {}).get("pid")
            if dpid != d.pid:
                ctx.note(kind, f"status reports daemon pid {dpid}, Popen pid is {d.pid}")
        except Exception as e:
            ctx.note(kind, f"status --json after start failed: {e}")
    return {"start_s": median(times)}


# --------------------------------------------------------------------------- 4. memory
def m_memory(ctx: Ctx, kind: str) -> dict[str, Value]:
    d = ctx.sleepers(kind, settle=2.0)
    mi = psutil.Process(d.pid).memory_full_info()
    helpers = d.helpers({"sleep"})
    h_rss = h_pss = 0
    for pid in helpers:
        try:
            hm = psutil.Process(pid).memory_full_info()
            h_rss += hm.rss
            h_pss += hm.pss
            ctx.note(kind, f"helper child pid {pid} ({read_cmdline(pid)[:160]}): "
                           f"RSS {hm.rss / 2**20:.1f} MiB, PSS {hm.pss / 2**20:.1f} MiB")
        except psutil.Error:
            pass
    mib = 2 ** 20
    return {"rss_mib": mi.rss / mib, "uss_mib": mi.uss / mib, "pss_mib": mi.pss / mib,
            "helpers_n": len(helpers), "helpers_rss_mib": h_rss / mib, "helpers_pss_mib": h_pss / mib,
            "total_rss_mib": (mi.rss + h_rss) / mib, "total_pss_mib": (mi.pss + h_pss) / mib}


# --------------------------------------------------------------------------- 3. idle CPU
def m_idle_cpu(ctx: Ctx, kind: str) -> dict[str, Value]:
    d = ctx.sleepers(kind, settle=2.0)
    dur = 10.0 if ctx.quick else 30.0
    helpers = d.helpers({"sleep"})
    c0, h0, t0 = cpu_map([d.pid]), cpu_map(helpers), time.perf_counter()
    time.sleep(dur)  # the harness does nothing meanwhile
    c1, h1, t1 = cpu_map([d.pid]), cpu_map(helpers), time.perf_counter()
    d.check_alive()
    n = count_workers(d, "sleep")
    if n != N_WORKERS:
        ctx.note(kind, f"idle CPU: {n} workers running at the end, not {N_WORKERS}")
    ctx.detail(kind, "idle_window_s", t1 - t0)
    pct = cpu_delta(c0, c1) / (t1 - t0) * 100
    ctx.idle_cpu_pct[kind] = pct  # limits_cpu compares with it
    return {"idle_cpu_pct": pct, "idle_cpu_helpers_pct": cpu_delta(h0, h1) / (t1 - t0) * 100}


# --------------------------------------------------------------------------- 7. status
def m_status(ctx: Ctx, kind: str) -> dict[str, Value]:
    d = ctx.sleepers(kind)
    argv = d.status_argv()
    n = 10 if ctx.quick else 20
    times = []
    for i in range(n + 1):
        t0 = time.perf_counter()
        r = subprocess.run(argv, capture_output=True, timeout=15, stdin=subprocess.DEVNULL,
                           check=False)
        t = time.perf_counter() - t0
        lines = r.stdout.count(b"\n")
        ok = r.returncode == 0 or (kind == "supervisord" and r.returncode == 3)
        if not ok or lines < N_WORKERS:
            raise BenchError(f"{' '.join(argv[-2:])}: rc={r.returncode}, {lines} lines: "
                             f"{(r.stderr or r.stdout).decode(errors='replace')[:300]}")
        if i:  # the first run warms the page cache and is not counted
            times.append(t)
    ctx.detail(kind, "status_cmd", " ".join(argv))
    ctx.detail(kind, "status_s_all", times)
    return {"status_ms": median(times) * 1000, "status_p95_ms": percentile(times, 95) * 1000}


# --------------------------------------------------------------------------- 2. restart
def _spawn_floor(ctx: Ctx, n: int) -> list[float]:
    """The same worker started by the harness itself (Popen → `sleep` seen in /proc by
    the same poll loop): what the measurement costs with a spawner that takes no time."""
    out = []
    w = ChildWatcher(os.getpid(), settled_comm="sleep")
    for _ in range(n):
        t0 = time.perf_counter()
        p = subprocess.Popen(["/bin/sh", str(ctx.scripts["sleep"])], start_new_session=True,
                             stdin=subprocess.DEVNULL)
        try:
            _, t1 = wait_for("the harness's own worker",
                             lambda p=p: p.pid in w.workers("sleep") or None, timeout=10)
            out.append(t1 - t0)
        finally:
            p.kill()
            p.wait()
        time.sleep(0.05)
    return out


def m_restart(ctx: Ctx, kind: str) -> dict[str, Value]:
    d = ctx.sleepers(kind)
    n = 10 if ctx.quick else 30
    gap = 0.3
    w = ChildWatcher(d.pid, settled_comm="sleep")
    current = w.workers("sleep")
    if len(current) < N_WORKERS:
        raise BenchError(f"only {len(current)} workers running before the kills")
    # a different original worker each time: none of them is in a crash streak
    victims = random.Random(12345).sample(sorted(current), n)
    lat, forks = [], []
    for v in victims:
        kids = w.poll()
        if v not in kids or kids[v].comm != "sleep":
            raise BenchError(f"victim {v} is no longer running")
        before = set(kids)
        t_fork = None
        t0 = time.perf_counter()
        os.kill(v, signal.SIGKILL)
        deadline = t0 + 15
        while True:
            kids = w.poll()
            now = time.perf_counter()
            new = [p for p in kids.values() if p.pid not in before]
            if new and t_fork is None:
                t_fork = now
            if any(p.comm == "sleep" for p in new):
                break
            if now > deadline:
                raise BenchError(f"no replacement for worker {v} after 15 s")
            if not d.alive():
                raise BenchError(f"{kind} exited during the restart test")
            time.sleep(POLL)
        lat.append(now - t0)
        forks.append(t_fork - t0)
        time.sleep(gap)
    d.note_tree()
    floor = _spawn_floor(ctx, n)
    ctx.detail(kind, "restart_s_all", lat)
    ctx.detail(kind, "restart_fork_seen_s_all", forks)
    ctx.detail(kind, "restart_floor_s_all", floor)
    return {"restart_median_ms": median(lat) * 1000, "restart_p95_ms": percentile(lat, 95) * 1000,
            "restart_max_ms": max(lat) * 1000, "restart_fork_median_ms": median(forks) * 1000,
            "restart_floor_ms": median(floor) * 1000}


# --------------------------------------------------------------------------- 5. graceful stop
def _graceful_floor(ctx: Ctx) -> float:
    """How long one graceful.sh takes after SIGTERM to its group, with no daemon."""
    p = subprocess.Popen(["/bin/sh", str(ctx.scripts["graceful"])], start_new_session=True,
                         stdin=subprocess.DEVNULL)
    try:
        wait_for("graceful.sh's sleep", lambda: any(
            q.ppid == p.pid and q.comm == "sleep" for q in scan_all().values()) or None, timeout=10,
            interval=0.005)
        t0 = time.perf_counter()
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=10)
        return time.perf_counter() - t0
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        p.wait()


def m_graceful_stop(ctx: Ctx, kind: str) -> dict[str, Value]:
    floor = _graceful_floor(ctx)
    d = ctx.new_daemon(kind, [Program("g", f"/bin/sh {ctx.scripts['graceful']}", N_WORKERS)])
    try:
        d.start()

        def ready():
            procs = scan_all()
            shells = {p.pid: p for p in procs.values()
                      if p.ppid == d.pid and p.comm == "sh" and p.state != "Z"}
            armed = {p.ppid for p in procs.values() if p.ppid in shells and p.comm == "sleep"}
            return shells if len(armed) >= N_WORKERS else None

        shells, _ = wait_for(f"{N_WORKERS} armed graceful workers", ready, timeout=60,
                             interval=0.01, alive=d.alive)
        time.sleep(1.0)
        pgrps = {p.pgrp for p in shells.values()}
        d.known_pgrps |= pgrps
        d.note_tree()
        t0 = time.perf_counter()
        d.terminate()
        t_exit = t_gone = None
        deadline = t0 + 60
        while t_exit is None or t_gone is None:
            now = time.perf_counter()
            if t_exit is None and d.proc.poll() is not None:
                t_exit = now
            if t_gone is None and not any(p.pgrp in pgrps and p.state != "Z"
                                          for p in scan_all().values()):
                t_gone = now
            if now > deadline:
                raise BenchError("daemon or workers still there 60 s after SIGTERM")
            time.sleep(0.002)
        rc = d.proc.returncode
        if rc != 0:
            ctx.note(kind, f"graceful stop: daemon exit code {rc}")
        ctx.detail(kind, "stop_daemon_exit_s", t_exit - t0)
        ctx.detail(kind, "stop_workers_gone_s", t_gone - t0)
        return {"stop_s": max(t_exit, t_gone) - t0, "stop_floor_s": floor}
    finally:
        ctx.release(d)


def _le_sv(w: Value, s: Value) -> bool | None:
    return None if s is None else w <= s


METRICS: list[Metric] = [
    Metric("start", "1. start to 100 workers running", m_start, [
        Row("start_s", "daemon start (Popen) → 100 workers running, per /proc (median of 3 starts; 1 "
            "with --quick)", "s",
            "{:.3f}", "lower", "≤ 0.3 s", lambda w, s: w <= 0.3),
    ], fixture=True),
    Metric("memory", "4. memory with 100 workers", m_memory, [
        Row("rss_mib", "daemon RSS, 100 workers", "MiB", "{:.1f}", "lower", "≤ supervisord", _le_sv),
        Row("uss_mib", "daemon USS", "MiB", "{:.1f}", "lower"),
        Row("pss_mib", "daemon PSS", "MiB", "{:.1f}", "lower"),
        Row("helpers_n", "helper children of the daemon (not workers)", "", "{:d}"),
        Row("helpers_rss_mib", "helper children RSS", "MiB", "{:.1f}", "lower"),
        Row("helpers_pss_mib", "helper children PSS", "MiB", "{:.1f}", "lower"),
        Row("total_rss_mib", "daemon + helpers RSS", "MiB", "{:.1f}", "lower", "≤ supervisord", _le_sv),
        Row("total_pss_mib", "daemon + helpers PSS", "MiB", "{:.1f}", "lower", "≤ supervisord", _le_sv),
    ], fixture=True),
    Metric("idle_cpu", "3. idle CPU with 100 sleeping workers", m_idle_cpu, [
        Row("idle_cpu_pct", "daemon idle CPU, 100 sleeping workers, over 30 s (10 s with --quick)", "% core",
            "{:.4f}",
            "lower", "≤ supervisord", _le_sv),
        Row("idle_cpu_helpers_pct", "helper children idle CPU", "% core", "{:.4f}", "lower"),
    ], fixture=True),
    Metric("status", "7. status command wall time", m_status, [
        Row("status_ms", "`workerctl status` vs `supervisorctl status`, 100 workers, wall time, median of "
            "20 runs (10 with --quick)",
            "ms", "{:.0f}", "lower", "< 60 ms", lambda w, s: w < 60),
        Row("status_p95_ms", "… p95", "ms", "{:.0f}", "lower"),
    ], fixture=True),
    Metric("restart", "2. restart after SIGKILL", m_restart, [
        Row("restart_median_ms", "SIGKILL of a worker → its replacement running `sleep` in /proc, median of 30 "
            "kills of distinct workers (10 with --quick)", "ms",
            "{:.1f}", "lower", "< 5 ms", lambda w, s: w < 5),
        Row("restart_p95_ms", "… p95", "ms", "{:.1f}", "lower", "< 10 ms", lambda w, s: w < 10),
        Row("restart_max_ms", "… max", "ms", "{:.1f}", "lower"),
        Row("restart_fork_median_ms", "… median until the new child is first seen (before it "
                                      "execs sh, then sleep)", "ms", "{:.1f}", "lower"),
        Row("restart_floor_ms", "… floor: the harness Popens the same worker itself, "
                                "same detection (median)", "ms", "{:.1f}"),
    ], fixture=True),
    Metric("graceful_stop", "5. graceful stop", m_graceful_stop, [
        Row("stop_s", "SIGTERM to daemon → daemon exited and all 100 workers gone "
                      "(each worker takes 1 s after TERM)", "s", "{:.3f}", "lower", "≤ 1.2 s",
            lambda w, s: w <= 1.2),
        Row("stop_floor_s", "… one worker alone, SIGTERM → exit (the floor; no daemon)", "s",
            "{:.3f}"),
    ]),
]
