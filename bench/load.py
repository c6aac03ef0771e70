"""Metrics 6 and 8, the daemons under load: a 512 MiB stdout flood, and ten programs
crashing at once."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from daemons import Daemon, Program
from harness import (
    CRASH_PROGRAMS,
    FLOOD_BYTES,
    Ctx,
    Metric,
    Row,
    Value,
    cpu_delta,
    cpu_map,
)
from procs import (
    POLL,
    BenchError,
    median,
    read_cmdline,
    read_stat,
    scan_all,
    wait_for,
)


# --------------------------------------------------------------------------- 6. flood
def _dir_bytes(path: Path) -> int:
    total = 0
    try:
        with os.scandir(path) as it:
            for e in it:
                try:
                    total += e.stat().st_size
                except OSError:
                    pass
    except OSError:
        pass
    return total


def _watch_growth(size: Callable[[], int], s0: int, done: Callable[[], bool],
                  timeout: float) -> tuple[float, float, int]:
    """Poll size() every ms: (time of the first growth, time of the last, final size).
    Ends when done() and the size has not changed for 1 s."""
    deadline = time.perf_counter() + timeout
    t_first = t_last = None
    last = s0
    while True:
        now = time.perf_counter()
        s = size()
        if s != last:
            last = s
            t_last = now
            if t_first is None:
                t_first = now
        if t_last is not None and now - t_last > 1.0 and done():
            return t_first, t_last, last
        if now > deadline:
            raise BenchError(f"flood not finished after {timeout:g} s ({last - s0} bytes written)")
        time.sleep(POLL)


def _file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _flood_raw(ctx: Ctx, script: str) -> float:
    """MB/s of the flood command with its stdout straight to a file (no daemon)."""
    out = ctx.tmp / "raw.out"
    os.sync()  # earlier runs' dirty pages are not written back during this one
    with open(out, "wb") as f:
        p = subprocess.Popen(["/bin/sh", str(ctx.scripts[script])], stdout=f,
                             stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        t_first, t_last, size = _watch_growth(lambda: _file_size(out), 0,
                                              lambda: p.poll() is not None, timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        out.unlink(missing_ok=True)
    if size != FLOOD_BYTES:
        raise BenchError(f"raw flood wrote {size} bytes, not {FLOOD_BYTES}")
    return FLOOD_BYTES / (t_last - t_first) / 1e6


def _flood_daemon(ctx: Ctx, kind: str) -> tuple[float, float]:
    """(MB/s from the first byte in the daemon's log dir to the last, daemon CPU s)."""
    fifo = ctx.tmp / f"go-{kind}.fifo"
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    prog = Program("flood", f"/bin/sh {ctx.scripts['flood']} {fifo}", 1, restart="never")
    # workerd rotates <program>.log at 50 MiB by default; supervisord gets maxbytes=0
    d = ctx.new_daemon(kind, [prog], {"log_max_bytes": '"4GiB"'} if kind == "workerd" else None)
    try:
        d.start()
        script = str(ctx.scripts["flood"])
        shells, _ = wait_for("the flood worker", lambda: [
            p for p in scan_all().values()
            if p.ppid == d.pid and p.comm == "sh" and script in read_cmdline(p.pid)] or None,
            timeout=30, interval=0.01, alive=d.alive)
        worker = shells[0].pid
        time.sleep(1.0)
        d.note_tree()
        helpers = d.helpers({"sh", "yes", "head"})
        os.sync()
        s0 = _dir_bytes(d.log_dir)
        c0 = cpu_map([d.pid, *helpers])
        deadline = time.perf_counter() + 10
        while True:  # open the FIFO once the worker is blocked reading it
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                if time.perf_counter() > deadline:
                    raise BenchError("the flood worker never opened its FIFO") from None
                time.sleep(0.005)
        os.write(fd, b"go\n")
        os.close(fd)

        def worker_done() -> bool:
            st = read_stat(worker)
            return st is None or st.state == "Z"

        t_first, t_last, size = _watch_growth(lambda: _dir_bytes(d.log_dir), s0, worker_done,
                                              timeout=300)
        c1 = cpu_map([d.pid, *helpers])
        d.check_alive()
        logged = size - s0
        if logged < FLOOD_BYTES:
            ctx.note(kind, f"flood: only {logged} of {FLOOD_BYTES} bytes reached the log")
        ctx.detail(kind, "flood_logged_bytes", logged)
        return FLOOD_BYTES / (t_last - t_first) / 1e6, cpu_delta(c0, c1)
    finally:
        ctx.release(d)
        for f in d.log_dir.iterdir():
            f.unlink()
        fifo.unlink(missing_ok=True)


def m_flood(ctx: Ctx, kind: str) -> dict[str, Value]:
    reps = 1 if ctx.quick else 3
    raw, cat, mbs, cpu = [], [], [], []
    for _ in range(reps):
        raw.append(_flood_raw(ctx, "flood_raw"))
        cat.append(_flood_raw(ctx, "flood_cat"))
        m, c = _flood_daemon(ctx, kind)
        mbs.append(m)
        cpu.append(c)
        ctx.log(f"  raw {raw[-1]:.0f} MB/s, via cat {cat[-1]:.0f} MB/s, {kind} {m:.0f} MB/s, "
                f"{c:.2f} CPU s")
    for k, v in (("raw", raw), ("cat", cat), ("daemon", mbs), ("cpu", cpu)):
        ctx.detail(kind, f"flood_{k}_all", v)
    return {"flood_raw_mbs": median(raw), "flood_cat_mbs": median(cat), "flood_mbs": median(mbs),
            "flood_pct_raw": median(mbs) / median(raw) * 100, "flood_cpu_s": median(cpu)}


# --------------------------------------------------------------------------- 8. crash loop
def _crash_run(ctx: Ctx, kind: str, defaults: bool) -> tuple[float, float, str]:
    """(daemon CPU % of a core, spawns/s, end state) for CRASH_PROGRAMS programs that
    exit 1 at once, counted by the bytes the workers append to one file."""
    count = ctx.tmp / f"spawns-{kind}-{int(defaults)}.count"
    count.unlink(missing_ok=True)
    progs = [Program(f"c{i}", f"/bin/sh {ctx.scripts['crash']} {count}", 1,
                     start_seconds=None, daemon_defaults=defaults)
             for i in range(CRASH_PROGRAMS)]
    d = ctx.new_daemon(kind, progs)
    dur = 10.0 if ctx.quick else 30.0
    try:
        d.start()
        wait_for("the first crash", lambda: _file_size(count) > 0 or None, timeout=30,
                 interval=0.005, alive=d.alive)
        time.sleep(0.5)  # the daemon's start-up is not part of the window
        helpers = d.helpers({"sh"})
        n0, c0, t0 = _file_size(count), cpu_map([d.pid, *helpers]), time.perf_counter()
        time.sleep(dur)
        n1, c1, t1 = _file_size(count), cpu_map([d.pid, *helpers]), time.perf_counter()
        d.check_alive()
        state = _crash_state(ctx, d, kind)
        return cpu_delta(c0, c1) / (t1 - t0) * 100, (n1 - n0) / (t1 - t0), state
    finally:
        ctx.release(d)


def _crash_state(ctx: Ctx, d: Daemon, kind: str) -> str:
    try:
        if kind == "workerd":
            st = d.status_json()
            states: dict[str, int] = {}
            restarts = 0
            for prog in st.get("programs", []):
                for p in prog.get("processes", []):
                    states[p.get("state")] = states.get(p.get("state"), 0) + 1
                    restarts += int(p.get("restarts") or 0)
            ctx.detail(kind, "crash_restarts_from_status", restarts)
        else:
            r = d.ctl("status")
            states = {}
            for line in r.stdout.splitlines():
                parts = line.split()
                if len(parts) >= 2:
                    states[parts[1]] = states.get(parts[1], 0) + 1
        return ", ".join(f"{n} {s}" for s, n in sorted(states.items(), key=lambda kv: -kv[1]))
    except Exception as e:
        return f"? ({e})"


def m_crash_loop(ctx: Ctx, kind: str) -> dict[str, Value]:
    cpu, spawns, state = _crash_run(ctx, kind, defaults=False)
    out: dict[str, Value] = {"crash_cpu_pct": cpu, "crash_spawns_s": spawns, "crash_state": state}
    if kind == "supervisord":
        cpu, spawns, state = _crash_run(ctx, kind, defaults=True)
        out.update({"crash_cpu_defaults_pct": cpu, "crash_spawns_defaults_s": spawns,
                    "crash_state_defaults": state})
    return out


METRICS: list[Metric] = [
    Metric("flood", "6. 512 MiB stdout flood", m_flood, [
        Row("flood_raw_mbs", "512 MiB of 100-byte lines: same command → file directly (raw; median of 3, 1 "
            "with --quick)",
            "MB/s", "{:.0f}", "higher"),
        Row("flood_cat_mbs", "… the same piped through `cat` → file (a plain pipe reader, no "
                             "daemon; for reference)", "MB/s", "{:.0f}",
            "higher"),
        Row("flood_mbs", "… through the daemon into its log file (first byte → last)", "MB/s",
            "{:.0f}", "higher"),
        Row("flood_pct_raw", "… as % of raw", "%", "{:.0f}", "higher", "≥ 50 %",
            lambda w, s: w >= 50),
        Row("flood_cpu_s", "… daemon CPU seconds during the flood", "s", "{:.2f}", "lower"),
    ]),
    Metric("crash_loop", "8. 10 programs exiting at once", m_crash_loop, [
        Row("crash_cpu_pct", "10 programs `exit 1` at once, daemon CPU over 30 s (10 s with "
                             "--quick; workerd defaults; supervisord startsecs=0)", "% core", "{:.2f}", "lower",
            "< 0.5 %", lambda w, s: w < 0.5),
        Row("crash_spawns_s", "… spawns per second (appended-file count)", "/s", "{:.1f}", "lower"),
        Row("crash_state", "… states at the end", "", "{}"),
        Row("crash_cpu_defaults_pct", "… supervisord with its defaults (startsecs=1, startretries=3): "
                                      "daemon CPU", "% core", "{:.2f}", "lower"),
        Row("crash_spawns_defaults_s", "… supervisord defaults: spawns per second", "/s", "{:.2f}",
            "lower"),
        Row("crash_state_defaults", "… supervisord defaults: states at the end", "", "{}"),
    ]),
]
