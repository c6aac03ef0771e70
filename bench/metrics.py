"""The metrics: one function per metric, each run once per daemon.

A metric function takes (ctx, kind) and returns {row key: value}; the rows it
fills are declared next to it (Row), with the unit, which way is better and the
goal. To add a metric, write a function and append a Metric to METRICS.
"""
from __future__ import annotations

import json
import math
import os
import random
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from daemons import Daemon, Program
from procs import (
    POLL,
    BenchError,
    ChildWatcher,
    median,
    percentile,
    read_cmdline,
    read_stat,
    scan_all,
    wait_for,
)

N_WORKERS = 100
FLOOD_BYTES = 512 * 1024 * 1024
FLOOD_LINE = "x" * 99  # + "\n" = 100-byte lines
CRASH_PROGRAMS = 10
MiB = 2 ** 20
HOG_LIMIT = 64 * MiB   # [programs.hog.limits] memory
HOG_TOTAL = 100 * MiB  # what the hog allocates and touches in one go
HOG_CHUNK = 8 * MiB    # ... in chunks, its RSS read from /proc/self/statm after each
SAMPLE_INTERVAL = 1.0  # [daemon] sample_interval of both limit metrics (workerd's default)

# The memory hog (limit_restart): blocks on the FIFO $1 until the harness writes to it,
# then allocates and touches HOG_TOTAL bytes in HOG_CHUNK chunks (bytes * n is a memset:
# every page is touched), and as soon as its RSS is above the limit writes
# "<time.monotonic()> <pid> <rss>" to $2 (atomically: tmp + rename), then sleeps.
# CLOCK_MONOTONIC is system-wide, so the harness compares it with its own time.monotonic().
HOG_PY = f"""\
import os, sys, time
fifo, out = sys.argv[1], sys.argv[2]
page = os.sysconf("SC_PAGE_SIZE")

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page

with open(fifo) as f:
    f.readline()
chunks = []
for _ in range({HOG_TOTAL // HOG_CHUNK}):
    chunks.append(b"\\x01" * {HOG_CHUNK})
    r = rss()
    if r > {HOG_LIMIT}:
        t = time.monotonic()
        with open(out + ".tmp", "w") as f:
            f.write(f"{{t!r}} {{os.getpid()}} {{r}}\\n")
        os.rename(out + ".tmp", out)
        break
chunks.append(b"\\x01" * ({HOG_TOTAL} - len(chunks) * {HOG_CHUNK}))
time.sleep(3600)
"""

Value = Any  # float | int | str | None


# --------------------------------------------------------------------------- context
@dataclass
class Fixture:
    daemon: Daemon
    ready_at: float  # perf_counter when all workers were seen running


class Ctx:
    """Shared state of one bench run: temp dir, scripts, the daemons started (all
    killed by kill_all), and the '100 sleeping workers' fixture several metrics share."""

    def __init__(self, bin_dir: Path, tmp: Path, quick: bool, log: Callable[[str], None]) -> None:
        self.bin = bin_dir
        self.tmp = tmp
        self.quick = quick
        self.log = log
        self.daemons: list[Daemon] = []
        self.fixture: Fixture | None = None
        self.notes: dict[str, list[str]] = {}
        self.details: dict[str, dict[str, Any]] = {}
        self.idle_cpu_pct: dict[str, float] = {}  # set by idle_cpu, read by limits_cpu
        self._n = 0
        self.scripts = self._write_scripts()

    def _write_scripts(self) -> dict[str, Path]:
        s = {
            "sleep": "exec sleep 3600\n",
            # TERM (sent to the whole group) kills the sleep; the trap then takes 1 s
            "graceful": "trap 'kill $child 2>/dev/null; sleep 1; exit 0' TERM\n"
                        "sleep 3600 & child=$!\nwait\n",
            # waits for the harness to open the FIFO given as $1, then floods stdout
            "flood": f'read go < "$1"\nyes "{FLOOD_LINE}" | head -c {FLOOD_BYTES}\n',
            "flood_raw": f'yes "{FLOOD_LINE}" | head -c {FLOOD_BYTES}\n',
            "flood_cat": f'yes "{FLOOD_LINE}" | head -c {FLOOD_BYTES} | cat\n',
            "crash": 'printf x >> "$1"\nexit 1\n',
        }
        out = {}
        for name, body in s.items():
            p = self.tmp / f"{name}.sh"
            p.write_text(body)
            out[name] = p
        out["hog"] = self.tmp / "hog.py"
        out["hog"].write_text(HOG_PY)
        return out

    def note(self, kind: str, text: str) -> None:
        self.notes.setdefault(kind, []).append(text)
        self.log(f"  note ({kind}): {text}")

    def detail(self, kind: str, key: str, value: Any) -> None:
        self.details.setdefault(kind, {})[key] = value

    def new_daemon(self, kind: str, programs: list[Program],
                   extra: dict[str, str] | None = None) -> Daemon:
        self._n += 1
        d = self.tmp / f"{kind[0]}{self._n}"  # short: unix socket paths are limited
        d.mkdir()
        daemon = Daemon(kind, d, self.bin, programs, dict(extra or {}))
        daemon.write_config()
        self.daemons.append(daemon)
        return daemon

    def release(self, daemon: Daemon) -> None:
        daemon.kill()

    def kill_all(self) -> None:
        for d in self.daemons:
            try:
                d.kill()
            except Exception as e:  # noqa: BLE001 (reported, run goes on)  # keep killing the others
                self.log(f"  cleanup of {d.kind} pid {d.proc.pid if d.proc else '?'} failed: {e}")

    # -- the shared fixture: N_WORKERS x `sleep 3600`
    def close_fixture(self) -> None:
        if self.fixture is not None:
            self.release(self.fixture.daemon)
            self.fixture = None

    def launch_sleepers(self, kind: str, limits: tuple[tuple[str, str], ...] = (),
                        extra: dict[str, str] | None = None) -> tuple[Daemon, float, float]:
        """A fresh daemon with N_WORKERS sleeping workers (program "w", with `limits` if
        any); returns it, perf_counter before its Popen and when all the workers were seen
        running in /proc (children of the daemon, comm sleep). The caller releases it."""
        d = self.new_daemon(kind, [Program("w", f"/bin/sh {self.scripts['sleep']}", N_WORKERS,
                                           limits=limits)], extra)
        t0 = d.start()
        try:
            w = ChildWatcher(d.pid, settled_comm="sleep")
            _, t1 = wait_for(f"{N_WORKERS} workers of {kind}",
                             lambda: len(w.workers("sleep")) >= N_WORKERS or None,
                             timeout=60, alive=d.alive)
        except BaseException:
            self.release(d)
            raise
        d.note_tree()
        return d, t0, t1

    def start_sleepers(self, kind: str) -> tuple[Daemon, float]:
        """A fresh fixture daemon with N_WORKERS sleeping workers; returns it and the
        seconds from Popen to all of them running."""
        self.close_fixture()
        d, t0, t1 = self.launch_sleepers(kind)
        self.fixture = Fixture(d, t1)
        return d, t1 - t0

    def sleepers(self, kind: str, settle: float = 1.0) -> Daemon:
        if self.fixture is None or self.fixture.daemon.kind != kind or not self.fixture.daemon.alive():
            self.start_sleepers(kind)
        assert self.fixture is not None
        rest = self.fixture.ready_at + settle - time.perf_counter()
        if rest > 0:
            time.sleep(rest)
        self.fixture.daemon.check_alive()
        return self.fixture.daemon


def cpu_ns(pid: int) -> int:
    """CPU time of all threads of pid, in ns, from /proc/pid/task/*/schedstat
    (ns resolution; psutil's cpu_times is in 10 ms clock ticks)."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        raise BenchError(f"process {pid} is gone")
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def cpu_map(pids: list[int]) -> dict[int, float]:
    """{pid: CPU seconds} for the pids still there."""
    out = {}
    for pid in pids:
        try:
            out[pid] = cpu_ns(pid) / 1e9
        except BenchError:
            pass
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two cpu_map()s by the pids present in both."""
    return sum(after[p] - before[p] for p in before if p in after)


def count_workers(d: Daemon, comm: str) -> int:
    return sum(1 for p in scan_all().values()
               if p.ppid == d.pid and p.comm == comm and p.state != "Z")


# --------------------------------------------------------------------------- table rows
@dataclass(frozen=True)
class Row:
    key: str
    label: str
    unit: str = ""
    fmt: str = "{:.3g}"
    better: str | None = None          # "lower" | "higher" | None
    goal: str = ""
    check: Callable[[Value, Value], bool | None] | None = None  # (workerd, supervisord) -> met?
    # (None: cannot tell, e.g. no supervisord value)


@dataclass(frozen=True)
class Metric:
    name: str
    title: str
    fn: Callable[[Ctx, str], dict[str, Value]]
    rows: list[Row] = field(default_factory=list)
    fixture: bool = False   # uses the shared 100-sleeper daemon (runs grouped with others)


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
        except Exception as e:  # noqa: BLE001 (reported, run goes on)
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
                    raise BenchError("the flood worker never opened its FIFO")
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
    except Exception as e:  # noqa: BLE001 (reported, run goes on)
        return f"? ({e})"


def m_crash_loop(ctx: Ctx, kind: str) -> dict[str, Value]:
    cpu, spawns, state = _crash_run(ctx, kind, defaults=False)
    out: dict[str, Value] = {"crash_cpu_pct": cpu, "crash_spawns_s": spawns, "crash_state": state}
    if kind == "supervisord":
        cpu, spawns, state = _crash_run(ctx, kind, defaults=True)
        out.update({"crash_cpu_defaults_pct": cpu, "crash_spawns_defaults_s": spawns,
                    "crash_state_defaults": state})
    return out


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
                raise BenchError(f"no worker opened {fifo.name} within {timeout:g} s")
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
                                 "the time its RSS crossed the limit")
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
    respawn = [r - s for r, s in zip(restarts, stops)]
    return {"limit_stop_median_ms": median(stops) * 1000, "limit_stop_max_ms": max(stops) * 1000,
            "limit_restart_median_ms": median(restarts) * 1000,
            "limit_restart_max_ms": max(restarts) * 1000,
            "limit_respawn_median_ms": median(respawn) * 1000}


# --------------------------------------------------------------------------- 11-12. autoscaling
NO_AUTOSCALE = "workerd only: supervisord has no autoscaling (no equivalent), so its column is —"
REDIS_URL = "redis://127.0.0.1:6379/0"  # the [programs.q.autoscale] url, and where the harness pushes
AUTOSCALE_INTERVAL = 1.0     # [programs.*.autoscale] interval
AUTOSCALE_DOWN_DELAY = 2.0   # ... scale_down_delay
AUTOSCALE_JOBS = 100         # one burst: 100 jobs in one RPUSH (one INSERT transaction on SQLite)
AUTOSCALE_PER_WORKER = 10    # ... so 10 workers, which is also max
AUTOSCALE_MAX = 10
POLL_PROGRAMS = 20           # autoscale_polling_cpu: programs polling, each its own key
SQLITE_QUERY = "SELECT count(*) FROM jobs"


def _autoscale_keys(source: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """[programs.X.autoscale]: the common settings, then the source's own keys."""
    return (("min", "0"), ("max", str(AUTOSCALE_MAX)), ("per_worker", str(AUTOSCALE_PER_WORKER)),
            ("interval", json.dumps(f"{AUTOSCALE_INTERVAL:g}s")),
            ("scale_down_delay", json.dumps(f"{AUTOSCALE_DOWN_DELAY:g}s"))) + source


def _redis() -> tuple[Any, str | None]:
    """(a connected redis client, None) when the Redis at REDIS_URL answers PING,
    else (None, why not)."""
    try:
        import redis
    except ImportError as e:
        return None, f"the redis package is not importable in the bench venv ({e})"
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as e:
        client.close()
        return None, f"Redis at {REDIS_URL} does not answer ({type(e).__name__}: {e})"
    return client, None


def _unique_key(name: str) -> str:
    return f"wbench:{os.getpid()}:{secrets.token_hex(4)}:{name}"


def _sqlite_db(path: Path) -> None:
    """An empty jobs table in a fresh SQLite file (rollback journal: the daemon's
    read-only connection needs nothing else to exist)."""
    for p in (path, Path(f"{path}-journal")):
        p.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    try:
        con.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, payload TEXT)")
        con.commit()
    finally:
        con.close()


class _BurstQueue:
    """Where autoscale_reaction pushes its bursts: one Redis list (one RPUSH of
    AUTOSCALE_JOBS items, emptied by DEL), or, with Redis down, a SQLite table (one
    INSERT transaction, emptied by DELETE). close() removes the key / the file."""

    def __init__(self, ctx: Ctx) -> None:
        self.client, why = _redis()
        self.key: str | None = None
        self.path: Path | None = None
        self.source = "redis"
        if self.client is not None:
            self.key = _unique_key("reaction")
            if self.client.exists(self.key):
                self.client.close()
                raise BenchError(f"Redis key {self.key} exists already")
            self.autoscale = _autoscale_keys((("source", '"redis"'), ("url", json.dumps(REDIS_URL)),
                                              ("keys", json.dumps([self.key]))))
        else:
            self.source = "sqlite (Redis down: see the notes)"
            ctx.note("workerd", f"autoscale_reaction: {why}; measured with the SQLite source "
                                "instead (one INSERT transaction of 100 rows, count(*) query)")
            self.path = ctx.tmp / "reaction.db"
            _sqlite_db(self.path)
            self.autoscale = _autoscale_keys((("source", '"sqlite"'), ("path", json.dumps(str(self.path))),
                                              ("query", json.dumps(SQLITE_QUERY))))

    def push(self, n: int) -> None:
        if self.client is not None:
            self.client.rpush(self.key, *range(n))
            return
        con = sqlite3.connect(self.path, timeout=5)
        try:
            with con:
                con.executemany("INSERT INTO jobs (payload) VALUES (?)", [("job",)] * n)
        finally:
            con.close()

    def clear(self) -> None:
        if self.client is not None:
            self.client.delete(self.key)
            return
        con = sqlite3.connect(self.path, timeout=5)
        try:
            with con:
                con.execute("DELETE FROM jobs")
        finally:
            con.close()

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.delete(self.key)
            finally:
                self.client.close()
        elif self.path is not None:
            for p in (self.path, Path(f"{self.path}-journal")):
                p.unlink(missing_ok=True)


def _autoscale_ready(d: Daemon, names: list[str], timeout: float = 20.0) -> dict:
    """Wait until each named program's autoscaler has read its source once without error
    (`workerctl status --json`: depth set, no error); returns that status."""
    deadline = time.perf_counter() + timeout
    why = "no status yet"
    while True:
        d.check_alive()
        try:
            st = d.status_json()
        except (BenchError, ValueError) as e:  # socket not there yet
            why = str(e)
        else:
            autos = {p.get("name"): p.get("autoscale") for p in st.get("programs", [])}
            if any(not autos.get(n) for n in names):
                raise BenchError(f"status shows no autoscale for some of {names}: {autos}")
            waiting = [autos[n] for n in names if autos[n].get("depth") is None or autos[n].get("error")]
            if not waiting:
                return st
            errors = sorted({str(a["error"]) for a in waiting if a.get("error")})
            why = (f"{len(waiting)} of {len(names)} programs without a reading"
                   + (f": {'; '.join(errors)}"[:400] if errors else ""))
        if time.perf_counter() > deadline:
            raise BenchError(f"autoscaler not reading after {timeout:g} s: {why}")
        time.sleep(0.1)


def _scale_log(d: Daemon) -> list[str]:
    """The daemon's "NAME: scale up|down A -> B (...)" log lines (for notes only)."""
    try:
        text = (d.dir / "daemon.out").read_text(errors="replace")
    except OSError:
        return []
    return [line.split(" INFO ", 1)[-1] for line in text.splitlines() if ": scale " in line]


def _burst(d: Daemon, w: ChildWatcher, queue: _BurstQueue) -> dict[str, float]:
    """Push one burst, wait for AUTOSCALE_MAX `sleep` workers, empty the queue, wait
    for 0 workers. perf_counter times: push, first worker, all running, queue emptied,
    first worker gone, none left."""
    if w.workers("sleep"):
        raise BenchError("workers are running before the push")
    t_push = time.perf_counter()
    queue.push(AUTOSCALE_JOBS)
    t_first = None
    deadline = t_push + 3 * AUTOSCALE_INTERVAL + 10
    while True:
        n = len(w.workers("sleep"))
        now = time.perf_counter()
        if n and t_first is None:
            t_first = now
        if n >= AUTOSCALE_MAX:
            break
        if now > deadline:
            raise BenchError(f"{n} of {AUTOSCALE_MAX} workers running {now - t_push:.1f} s after "
                             f"the push of {AUTOSCALE_JOBS} jobs")
        if not d.alive():
            raise BenchError("workerd exited after the push")
        time.sleep(POLL)
    t_up = now
    assert t_first is not None
    d.note_tree()
    t_clear = time.perf_counter()
    queue.clear()
    t_drop = None
    deadline = t_clear + AUTOSCALE_DOWN_DELAY + 3 * AUTOSCALE_INTERVAL + 10
    while True:
        n = len(w.workers("sleep"))
        now = time.perf_counter()
        if n < AUTOSCALE_MAX and t_drop is None:
            t_drop = now
        if n == 0:
            break
        if now > deadline:
            raise BenchError(f"{n} workers still running {now - t_clear:.1f} s after the queue "
                             f"was emptied (scale_down_delay {AUTOSCALE_DOWN_DELAY:g} s)")
        if not d.alive():
            raise BenchError("workerd exited while scaling down")
        time.sleep(POLL)
    assert t_drop is not None
    return {"push": t_push, "first": t_first, "up": t_up, "clear": t_clear, "drop": t_drop,
            "zero": now}


def m_autoscale_reaction(ctx: Ctx, kind: str) -> dict[str, Value]:
    """A burst of jobs → the new workers running, min = 0, polled every AUTOSCALE_INTERVAL."""
    keys = ("autoscale_reaction_median_s", "autoscale_reaction_max_s",
            "autoscale_first_median_s", "autoscale_batch_median_ms", "autoscale_source")
    if kind != "workerd":
        ctx.note(kind, f"autoscale_reaction: {NO_AUTOSCALE}")
        return dict.fromkeys(keys)
    reps = 3 if ctx.quick else 5
    # The wait from the push to the next reading depends on where in the reading period
    # the push lands. The harness cannot see the daemon's timer, but the scale-down that
    # ends each burst happens right after a reading (the first worker is gone ~2 ms
    # later), so the pushes are placed at fractions (k + u) / reps of an interval after
    # that, u random, in a shuffled order: uniform over one interval, so the median
    # estimates the average (~interval / 2 + the spawn) and the max nears a full interval.
    rnd = random.Random()
    u = rnd.random()
    phases = [(k + u) / reps for k in range(reps)]
    rnd.shuffle(phases)
    queue = _BurstQueue(ctx)
    prog = Program("q", f"/bin/sh {ctx.scripts['sleep']}", autoscale=queue.autoscale)
    d = ctx.new_daemon(kind, [prog])
    reaction: list[float] = []
    first: list[float] = []
    down: list[float] = []
    try:
        d.start()
        w = ChildWatcher(d.pid, settled_comm="sleep")
        _autoscale_ready(d, ["q"])
        d.note_tree()
        # warm-up burst, not counted: checks the set-up and gives the timer's phase
        b = _burst(d, w, queue)
        ctx.log(f"  warm-up: {AUTOSCALE_MAX} workers after {(b['up'] - b['push']) * 1000:.0f} ms "
                f"(not counted), 0 again {b['zero'] - b['clear']:.2f} s after the queue was emptied")
        for i, phase in enumerate(phases):
            # the first reading-period start at least 50 ms from now, plus the phase
            k = max(1, math.ceil((time.perf_counter() + 0.05 - b["drop"]) / AUTOSCALE_INTERVAL))
            rest = b["drop"] + (k + phase) * AUTOSCALE_INTERVAL - time.perf_counter()
            if rest > 0:
                time.sleep(rest)
            b = _burst(d, w, queue)
            reaction.append(b["up"] - b["push"])
            first.append(b["first"] - b["push"])
            down.append(b["zero"] - b["clear"])
            ctx.log(f"  burst #{i + 1} (phase {phase:.2f}): first worker after "
                    f"{first[-1] * 1000:.0f} ms, {AUTOSCALE_MAX} after {reaction[-1] * 1000:.0f} ms; "
                    f"0 again {down[-1]:.2f} s after the queue was emptied")
        d.check_alive()
        st = _autoscale_ready(d, ["q"], timeout=5)
        auto = next(p for p in st["programs"] if p.get("name") == "q")["autoscale"]
        ctx.detail(kind, "autoscale_reaction_status", auto)
        ups = [line for line in _scale_log(d) if ": scale up " in line]
        ctx.detail(kind, "autoscale_reaction_scale_log", _scale_log(d))
        if len(ups) != reps + 1 or any(f"0 -> {AUTOSCALE_MAX} " not in line for line in ups):
            ctx.note(kind, f"autoscale_reaction: expected {reps + 1} decisions 'scale up 0 -> "
                           f"{AUTOSCALE_MAX}' in the daemon's log, found: {ups}")
    finally:
        ctx.release(d)
        queue.close()
    batch = [r - f for r, f in zip(reaction, first)]
    ctx.detail(kind, "autoscale_reaction_s_all", reaction)
    ctx.detail(kind, "autoscale_first_s_all", first)
    ctx.detail(kind, "autoscale_down_s_all", down)
    ctx.detail(kind, "autoscale_push_phases", phases)
    return {"autoscale_reaction_median_s": median(reaction), "autoscale_reaction_max_s": max(reaction),
            "autoscale_first_median_s": median(first), "autoscale_batch_median_ms": median(batch) * 1000,
            "autoscale_source": queue.source}


def _ctx_switches(pid: int) -> int:
    """Context switches of all threads of pid (each a wake-up, mostly)."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                        total += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
    return total


def _redis_type_calls(client: Any) -> int:
    """TYPE commands the Redis server has run (server-wide): one per key per reading."""
    return int(client.info("commandstats").get("cmdstat_type", {}).get("calls", 0))


def _polling_run(ctx: Ctx, kind: str, source: str, client: Any = None) -> dict[str, float]:
    """Daemon CPU (% of a core) over the window with POLL_PROGRAMS autoscaled programs
    reading an empty source every AUTOSCALE_INTERVAL (min 0: no worker ever runs)."""
    dur = 10.0 if ctx.quick else 30.0
    keys: list[str] = []
    db = ctx.tmp / "poll.db"
    if source == "redis":
        keys = [_unique_key(f"poll{i:02d}") for i in range(POLL_PROGRAMS)]
        if client.exists(*keys):
            raise BenchError("a Redis key of the polling test exists already")
        srcs = [(("source", '"redis"'), ("url", json.dumps(REDIS_URL)), ("keys", json.dumps([k])))
                for k in keys]
    else:
        _sqlite_db(db)
        srcs = [(("source", '"sqlite"'), ("path", json.dumps(str(db))), ("query", json.dumps(SQLITE_QUERY)))
                ] * POLL_PROGRAMS
    names = [f"p{i:02d}" for i in range(POLL_PROGRAMS)]
    progs = [Program(n, f"/bin/sh {ctx.scripts['sleep']}", autoscale=_autoscale_keys(s))
             for n, s in zip(names, srcs)]
    d = ctx.new_daemon(kind, progs)
    try:
        d.start()
        _autoscale_ready(d, names)
        time.sleep(2.0)  # as idle_cpu: start-up is not in the window
        d.note_tree()
        helpers = d.helpers({"sleep"})
        calls0 = _redis_type_calls(client) if client is not None else 0
        x0 = _ctx_switches(d.pid)
        c0, h0, t0 = cpu_map([d.pid]), cpu_map(helpers), time.perf_counter()
        time.sleep(dur)  # the harness does nothing meanwhile
        c1, h1, t1 = cpu_map([d.pid]), cpu_map(helpers), time.perf_counter()
        x1 = _ctx_switches(d.pid)
        calls1 = _redis_type_calls(client) if client is not None else 0
        d.check_alive()
        st = _autoscale_ready(d, names, timeout=5)  # every program still reads, no error
        n = count_workers(d, "sleep")
        if n:
            raise BenchError(f"{n} workers running with every queue empty (min 0)")
        depths = {p["autoscale"]["depth"] for p in st["programs"] if p.get("autoscale")}
        if depths != {0}:
            raise BenchError(f"depths read: {depths}, not 0")
        win = t1 - t0
        out = {"pct": cpu_delta(c0, c1) / win * 100, "helpers_pct": cpu_delta(h0, h1) / win * 100,
               "wakeups_s": (x1 - x0) / win, "window_s": win}
        if client is not None:
            out["reads_s"] = (calls1 - calls0) / win
        return out
    finally:
        ctx.release(d)
        if keys:
            client.delete(*keys)  # never created (an empty list does not exist), but to be sure
        for p in (db, Path(f"{db}-journal")):
            p.unlink(missing_ok=True)


def m_autoscale_polling_cpu(ctx: Ctx, kind: str) -> dict[str, Value]:
    keys = ("autoscale_poll_redis_pct", "autoscale_poll_redis_reads_s", "autoscale_poll_sqlite_pct")
    if kind != "workerd":
        ctx.note(kind, f"autoscale_polling_cpu: {NO_AUTOSCALE}")
        return dict.fromkeys(keys)
    out: dict[str, Value] = dict.fromkeys(keys)
    client, why = _redis()
    try:
        if client is None:
            ctx.note(kind, f"autoscale_polling_cpu: Redis row skipped: {why}")
        else:
            r = _polling_run(ctx, kind, "redis", client)
            ctx.detail(kind, "autoscale_poll_redis", r)
            ctx.log(f"  redis: {r['pct']:.3f} % of a core, {r['reads_s']:.1f} TYPE/s at the server, "
                    f"{r['wakeups_s']:.1f} context switches/s")
            out["autoscale_poll_redis_pct"] = r["pct"]
            out["autoscale_poll_redis_reads_s"] = r["reads_s"]
    finally:
        if client is not None:
            client.close()
    r = _polling_run(ctx, kind, "sqlite")
    ctx.detail(kind, "autoscale_poll_sqlite", r)
    ctx.log(f"  sqlite: {r['pct']:.3f} % of a core, {r['wakeups_s']:.1f} context switches/s")
    out["autoscale_poll_sqlite_pct"] = r["pct"]
    return out


# --------------------------------------------------------------------------- registry
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
                             "--quick; workerd defaults; supervisord startsecs=0)", "% core", "{:.2f}", "lower", "< 0.5 %",
            lambda w, s: w < 0.5),
        Row("crash_spawns_s", "… spawns per second (appended-file count)", "/s", "{:.1f}", "lower"),
        Row("crash_state", "… states at the end", "", "{}"),
        Row("crash_cpu_defaults_pct", "… supervisord with its defaults (startsecs=1, startretries=3): "
                                      "daemon CPU", "% core", "{:.2f}", "lower"),
        Row("crash_spawns_defaults_s", "… supervisord defaults: spawns per second", "/s", "{:.2f}",
            "lower"),
        Row("crash_state_defaults", "… supervisord defaults: states at the end", "", "{}"),
    ]),    Metric("limits_cpu", "9. CPU with 100 workers under watched limits (workerd only)",
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
    Metric("autoscale_reaction", "11. burst of jobs → new workers running (workerd only)",
           m_autoscale_reaction, [
        Row("autoscale_reaction_median_s", "100 jobs pushed at once (one RPUSH; autoscale min 0, max 10, "
            "per_worker 10, interval 1 s) → 10 new workers running, median of 5 pushes spread over the "
            "reading interval (3 with --quick); workerd only, supervisord has no autoscaling", "s",
            "{:.3f}", "lower", "< 1.2 s (interval + 200 ms)",
            lambda w, s: w < AUTOSCALE_INTERVAL + 0.2),
        Row("autoscale_reaction_max_s", "… max", "s", "{:.3f}", "lower", "< 1.2 s (interval + 200 ms)",
            lambda w, s: w < AUTOSCALE_INTERVAL + 0.2),
        Row("autoscale_first_median_s", "… push → the first of the 10 running, median", "s", "{:.3f}",
            "lower"),
        Row("autoscale_batch_median_ms", "… first → tenth running (the spawn of the batch), median", "ms",
            "{:.1f}", "lower"),
        Row("autoscale_source", "… queue source used", "", "{}"),
    ]),
    Metric("autoscale_polling_cpu", "12. CPU of polling 20 autoscaled programs (workerd only)",
           m_autoscale_polling_cpu, [
        Row("autoscale_poll_redis_pct", "daemon CPU, 20 autoscaled programs each reading its own empty "
            "Redis list every 1 s (min 0: no workers), over 30 s (10 s with --quick); workerd only, "
            "supervisord has no autoscaling", "% core", "{:.3f}", "lower", "< 1 %",
            lambda w, s: w < 1),
        Row("autoscale_poll_redis_reads_s", "… readings per second seen by Redis (TYPE commands, "
            "server-wide; expected 20)", "/s", "{:.1f}"),
        Row("autoscale_poll_sqlite_pct", "… the same, 20 programs reading one SQLite file "
            "(`SELECT count(*) FROM jobs`, empty table)", "% core", "{:.3f}", "lower", "< 1 %",
            lambda w, s: w < 1),
    ]),
]
