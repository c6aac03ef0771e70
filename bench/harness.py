"""The bench harness: the shared context of a run (temp dir, scripts, daemons, the
100-worker fixture), CPU readings, and how a metric and its table rows are declared.

A metric function takes (ctx, kind) and returns {row key: value}; the rows it fills are
declared next to it (Row), with the unit, which way is better and the goal. Each module
of metrics (metrics.py, load.py, limits.py, autoscaling.py, talking.py, service.py,
readers.py, console.py) has its METRICS list; run.py runs them in that order.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemons import Daemon, Program
from procs import (
    BenchError,
    ChildWatcher,
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
            except Exception as e:
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
        raise BenchError(f"process {pid} is gone") from None
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
