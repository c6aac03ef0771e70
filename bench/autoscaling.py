"""Metric 11, workerd only (supervisord has no autoscaling): a burst of jobs -> new
workers running; and what the autoscaling metrics share (the sources, the settings)."""
from __future__ import annotations

import json
import math
import os
import random
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

from daemons import Daemon, Program
from harness import Ctx, Metric, Row, Value
from procs import (
    POLL,
    BenchError,
    ChildWatcher,
    median,
)

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


def autoscale_keys(source: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """[programs.X.autoscale]: the common settings, then the source's own keys."""
    return (("min", "0"), ("max", str(AUTOSCALE_MAX)), ("per_worker", str(AUTOSCALE_PER_WORKER)),
            ("interval", json.dumps(f"{AUTOSCALE_INTERVAL:g}s")),
            ("scale_down_delay", json.dumps(f"{AUTOSCALE_DOWN_DELAY:g}s")), *source)


def redis_client() -> tuple[Any, str | None]:
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


def unique_key(name: str) -> str:
    return f"wbench:{os.getpid()}:{secrets.token_hex(4)}:{name}"


def sqlite_db(path: Path) -> None:
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
        self.client, why = redis_client()
        self.key: str | None = None
        self.path: Path | None = None
        self.source = "redis"
        if self.client is not None:
            self.key = unique_key("reaction")
            if self.client.exists(self.key):
                self.client.close()
                raise BenchError(f"Redis key {self.key} exists already")
            self.autoscale = autoscale_keys((("source", '"redis"'), ("url", json.dumps(REDIS_URL)),
                                              ("keys", json.dumps([self.key]))))
        else:
            self.source = "sqlite (Redis down: see the notes)"
            ctx.note("workerd", f"autoscale_reaction: {why}; measured with the SQLite source "
                                "instead (one INSERT transaction of 100 rows, count(*) query)")
            self.path = ctx.tmp / "reaction.db"
            sqlite_db(self.path)
            self.autoscale = autoscale_keys((("source", '"sqlite"'), ("path", json.dumps(str(self.path))),
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


def autoscale_ready(d: Daemon, names: list[str], timeout: float = 20.0) -> dict:
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
        autoscale_ready(d, ["q"])
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
        st = autoscale_ready(d, ["q"], timeout=5)
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
    batch = [r - f for r, f in zip(reaction, first, strict=True)]
    ctx.detail(kind, "autoscale_reaction_s_all", reaction)
    ctx.detail(kind, "autoscale_first_s_all", first)
    ctx.detail(kind, "autoscale_down_s_all", down)
    ctx.detail(kind, "autoscale_push_phases", phases)
    return {"autoscale_reaction_median_s": median(reaction), "autoscale_reaction_max_s": max(reaction),
            "autoscale_first_median_s": median(first), "autoscale_batch_median_ms": median(batch) * 1000,
            "autoscale_source": queue.source}



METRICS: list[Metric] = [
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
]
