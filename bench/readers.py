"""Metric 16, workerd only: the daemon's hand-written /proc readers against psutil asking
the same facts, on the same live tree of N_WORKERS workers. It is the figure behind
keeping the hand readers in workerd/process/procstat.py (issue: use psutil where it is
no slower)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import psutil
from daemons import Program
from harness import N_WORKERS, Ctx, Metric, Row, count_workers
from procs import wait_for

from workerd.process.procstat import open_files, processes, tree_usage, trees_pss

#: The facts the daemon's one pass reads for every process.
FACTS = ["ppid", "memory_info", "cpu_times", "num_threads", "create_time"]


def m_proc_readers(ctx: Ctx, kind: str) -> dict[str, float | None]:
    """Median wall time of each reader over the whole /proc, with the workers' trees summed."""
    if kind != "workerd":
        ctx.note(kind, "proc_readers: workerd only: it times workerd's own readers")
        return {"readers_pass_hand_ms": None, "readers_pass_psutil_ms": None,
                "readers_fds_hand_ms": None, "readers_fds_psutil_ms": None, "readers_pss_ms": None}
    d = ctx.new_daemon(kind, [Program("w", f"/bin/sh {ctx.scripts['sleep']}", N_WORKERS)])
    try:
        d.start()
        wait_for(f"{N_WORKERS} workers", lambda: count_workers(d, "sleep") == N_WORKERS or None, timeout=60,
                 alive=d.alive)
        workers = [p.pid for p in psutil.Process(d.pid).children() if p.name() == "sleep"]
        leaders = set(workers)
        reps = 10 if ctx.quick else 30
        table = processes()
        ctx.note(kind, f"proc_readers: {len(table)} processes on the machine, {len(leaders)} worker trees")
        return {
            "readers_pass_hand_ms": _median_ms(reps, lambda: tree_usage(processes(), leaders)),
            "readers_pass_psutil_ms": _median_ms(reps, lambda: list(psutil.process_iter(FACTS))),
            "readers_fds_hand_ms": _median_ms(reps, lambda: [open_files(pid) for pid in workers]),
            "readers_fds_psutil_ms": _median_ms(reps, lambda: [_psutil_fds(pid) for pid in workers]),
            "readers_pss_ms": _median_ms(reps, lambda: trees_pss(processes(), leaders)),
        }
    finally:
        ctx.release(d)


def _psutil_fds(pid: int) -> int | None:
    try:
        return psutil.Process(pid).num_fds()
    except psutil.Error:
        return None


def _median_ms(reps: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


READERS_NOTE = f"{N_WORKERS} workers, median wall time; workerd only"

METRICS = [
    Metric("proc_readers", "16. /proc readers: by hand vs psutil (workerd only)", m_proc_readers, [
        Row("readers_pass_hand_ms", f"one pass over /proc (RSS, CPU times, threads, start, tree) by workerd's "
            f"reader, trees summed; {READERS_NOTE}", "ms", "{:.1f}", "lower"),
        Row("readers_pass_psutil_ms", f"… the same facts through psutil.process_iter(); {READERS_NOTE}", "ms",
            "{:.1f}", "lower"),
        Row("readers_fds_hand_ms", f"open descriptors of every worker, listdir(/proc/PID/fd); {READERS_NOTE}", "ms",
            "{:.2f}", "lower"),
        Row("readers_fds_psutil_ms", f"… through psutil's num_fds(); {READERS_NOTE}", "ms", "{:.2f}", "lower"),
        Row("readers_pss_ms", f"PSS of every worker tree (psutil memory_full_info: smaps_rollup) with its /proc "
            f"pass; {READERS_NOTE}", "ms", "{:.1f}", "lower"),
    ]),
]
