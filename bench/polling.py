"""Metric 12, workerd only (supervisord has no autoscaling): the CPU of polling 20
autoscaled programs' empty queues."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from autoscaling import (
    NO_AUTOSCALE,
    POLL_PROGRAMS,
    REDIS_URL,
    SQLITE_QUERY,
    autoscale_keys,
    autoscale_ready,
    redis_client,
    sqlite_db,
    unique_key,
)
from daemons import Program
from harness import Ctx, Metric, Row, Value, count_workers, cpu_delta, cpu_map
from procs import (
    BenchError,
)


# --------------------------------------------------------------------------- 11-12. autoscaling
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
        keys = [unique_key(f"poll{i:02d}") for i in range(POLL_PROGRAMS)]
        if client.exists(*keys):
            raise BenchError("a Redis key of the polling test exists already")
        srcs = [(("source", '"redis"'), ("url", json.dumps(REDIS_URL)), ("keys", json.dumps([k])))
                for k in keys]
    else:
        sqlite_db(db)
        srcs = [(("source", '"sqlite"'), ("path", json.dumps(str(db))), ("query", json.dumps(SQLITE_QUERY)))
                ] * POLL_PROGRAMS
    names = [f"p{i:02d}" for i in range(POLL_PROGRAMS)]
    progs = [Program(n, f"/bin/sh {ctx.scripts['sleep']}", autoscale=autoscale_keys(s))
             for n, s in zip(names, srcs, strict=True)]
    d = ctx.new_daemon(kind, progs)
    try:
        d.start()
        autoscale_ready(d, names)
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
        st = autoscale_ready(d, names, timeout=5)  # every program still reads, no error
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
    client, why = redis_client()
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


METRICS: list[Metric] = [
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
