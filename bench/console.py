"""Metric 17, workerd only (supervisord's web page has no live charts to compare): what the
web console costs. Daemon CPU with 20 autoscaled programs reading SQLite every 1 s and
the console on, without a page open and then with one headless Chromium tab on it (its
live stream open); and the memory of the history ring kept for 20 programs over an hour."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import tracemalloc

import psutil
from autoscaling import (
    AUTOSCALE_INTERVAL,
    POLL_PROGRAMS,
    SQLITE_QUERY,
    autoscale_keys,
    autoscale_ready,
    sqlite_db,
)
from daemons import Program
from harness import Ctx, Metric, Row, cpu_delta, cpu_map
from procs import BenchError

from workerd.core.history import POINTS, History, Mark, Point

KEYS = ("console_idle_pct", "console_tab_pct", "console_tab_extra_pct", "console_ring_kib")


def m_console(ctx: Ctx, kind: str) -> dict[str, float | None]:
    if kind != "workerd":
        ctx.note(kind, "console: workerd only: supervisord's web page has no live history to compare")
        return dict.fromkeys(KEYS)
    browser = shutil.which("chromium")
    if browser is None:
        raise BenchError("chromium is not installed (apt-get install chromium)")
    seconds = 10.0 if ctx.quick else 30.0
    db = ctx.tmp / "console.db"
    sqlite_db(db)
    source = (("source", '"sqlite"'), ("path", json.dumps(str(db))), ("query", json.dumps(SQLITE_QUERY)))
    names = [f"c{i:02d}" for i in range(POLL_PROGRAMS)]
    port = _free_port()
    d = ctx.new_daemon(kind, [Program(n, f"/bin/sh {ctx.scripts['sleep']}", autoscale=autoscale_keys(source))
                              for n in names], {"console": json.dumps(f"127.0.0.1:{port}"),
                                                  "console_public": "true"})  # the tab reads without a token
    tab = None
    try:
        d.start()
        autoscale_ready(d, names)
        time.sleep(2.0)
        idle = _cpu_pct(d.pid, seconds)
        tab = subprocess.Popen([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                f"--user-data-dir={ctx.tmp / 'chromium'}", f"http://127.0.0.1:{port}/"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        _wait_for_stream(d.pid, port)
        time.sleep(2.0)  # the page's first fetches are not in the window
        with_tab = _cpu_pct(d.pid, seconds)
    finally:
        if tab is not None:
            _kill_group(tab)
        ctx.release(d)
    ctx.log(f"  console: {idle:.3f} % of a core without a page, {with_tab:.3f} % with one tab "
            f"(readings every {AUTOSCALE_INTERVAL:g} s)")
    return {"console_idle_pct": idle, "console_tab_pct": with_tab, "console_tab_extra_pct": with_tab - idle,
            "console_ring_kib": _ring_kib(POLL_PROGRAMS)}


def _cpu_pct(pid: int, seconds: float) -> float:
    c0, t0 = cpu_map([pid]), time.perf_counter()
    time.sleep(seconds)
    c1, t1 = cpu_map([pid]), time.perf_counter()
    return cpu_delta(c0, c1) / (t1 - t0) * 100


def _wait_for_stream(pid: int, port: int, timeout: float = 30.0) -> None:
    """Until the daemon holds an established connection on the console's port (the
    page's live stream)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = [c for c in psutil.Process(pid).net_connections("tcp")
                if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED]
        if held:
            return
        time.sleep(0.2)
    raise BenchError(f"no page opened the console's stream in {timeout:g} s")


def _ring_kib(programs: int) -> float:
    """The history kept for PROGRAMS programs after an hour of one point a second and a
    restart mark a minute, as tracemalloc counts it."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    histories = [History() for _ in range(programs)]
    for second in range(POINTS):
        for history in histories:
            history.record(Point(float(second), second % 50, 3, 3))
            if second % 60 == 0:
                history.mark(Mark(float(second), "restart", "crash: w[0]: exit status 1"))
    size = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return size / 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group the harness started (start_new_session)
    except ProcessLookupError:
        pass
    proc.wait(10)


WHAT = (f"{POLL_PROGRAMS} autoscaled programs reading SQLite every {AUTOSCALE_INTERVAL:g} s, "
        "over 30 s (10 s with --quick)")

METRICS = [
    Metric("console", "17. the web console's cost (workerd only)", m_console, [
        Row("console_idle_pct", f"daemon CPU with the console on and no page open; {WHAT}", "% core", "{:.3f}",
            "lower"),
        Row("console_tab_pct", "… with one headless Chromium tab on the console (its live stream open)", "% core",
            "{:.3f}", "lower"),
        Row("console_tab_extra_pct", "… what the tab adds", "% core", "{:.3f}", "lower", "< 1 %",
            lambda w, s: w < 1.0),
        Row("console_ring_kib", f"history ring of {POLL_PROGRAMS} programs after 1 h (one point a second, "
            "a mark a minute; tracemalloc)", "KiB", "{:.0f}", "lower"),
    ]),
]
