"""Autoscaling with the real daemon, real children and real queues: a SQLite file,
a redis-server of the test's own (killed and restarted by pid), the Redis at
127.0.0.1:6379 and, end to end, RQ workers draining a real RQ queue.

Intervals are short (0.2 s) and scale_down_delay 1 s, so that the whole file runs in
well under a minute; every wait is bounded and says what it waited for.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.conftest import Daemon, DaemonFactory, alive, one_line
from tests.sources.redis_server import RedisServer

INTERVAL = "0.2s"
DELAY = 1.0
REDIS_URL = "redis://127.0.0.1:6379/0"


class SqliteQueue:
    """A jobs table the test fills and drains; the daemon reads it with a count(*)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._exec("CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY)")

    def _exec(self, sql: str, rows: list[tuple[Any, ...]] | None = None) -> None:
        db = sqlite3.connect(self.path, timeout=5)
        try:
            with db:
                if rows is None:
                    db.execute(sql)
                else:
                    db.executemany(sql, rows)
        finally:
            db.close()

    def execute(self, *statements: str) -> None:
        """Run the statements in one transaction: no reading sees them half done."""
        db = sqlite3.connect(self.path, timeout=5, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            for sql in statements:
                db.execute(sql)
            db.execute("COMMIT")
        finally:
            db.close()

    def set(self, depth: int) -> None:
        self._exec("DELETE FROM jobs")
        if depth:
            self._exec("INSERT INTO jobs DEFAULT VALUES", [()] * depth)


def sqlite_programs(db: Path, *, minimum: int = 1, maximum: int = 4, per_worker: int = 2,
                    delay: float = DELAY, interval: str = INTERVAL, tag: str = "1000") -> str:
    return f"""
        [programs.w]
        command = "sleep {tag}"
        start_seconds = "0s"
        stop_timeout = "2s"

        [programs.w.autoscale]
        source = "sqlite"
        path = "{db}"
        query = "SELECT count(*) FROM jobs"
        min = {minimum}
        max = {maximum}
        per_worker = {per_worker}
        interval = "{interval}"
        scale_down_delay = "{delay}s"
    """


@pytest.fixture
def queue(tmp_path: Path) -> SqliteQueue:
    return SqliteQueue(tmp_path / "queue.db")


def auto(d: Daemon, name: str = "w") -> dict[str, Any]:
    program = d.program(name)
    assert program is not None and program["autoscale"] is not None, d.describe()
    return program["autoscale"]  # type: ignore[no-any-return]


def alive_slots(d: Daemon, name: str = "w") -> list[dict[str, Any]]:
    """Slots with a process (any state but stopped/exited)."""
    return [p for p in d.processes(name, None) if p["pid"] is not None]


def stays(d: Daemon, seconds: float, count: int, what: str, name: str = "w") -> None:
    """For `seconds`, the program keeps exactly `count` running processes and no others."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = d.status()
        procs = d.processes(name, None, status)
        running = [p for p in procs if p["state"] == "running"]
        if len(running) != count or len(procs) != count:
            pytest.fail(f"{what}: expected {count} running, got "
                        f"{[(p['instance'], p['state']) for p in procs]}\n{d.describe()}", pytrace=False)
        time.sleep(0.05)


# -- following a SQLite queue -------------------------------------------------------------------


def test_the_count_follows_the_queue_up_at_once_and_down_after_the_delay(daemon: DaemonFactory,
                                                                          queue: SqliteQueue) -> None:
    d = daemon(sqlite_programs(queue.path), reserve_memory=0)
    (first,) = d.wait_running("w", 1)                       # min = 1 with an empty queue
    assert auto(d)["source"] == "sqlite"

    pushed = time.monotonic()
    queue.set(6)                                             # 6 / per_worker 2 = 3
    pids = d.wait_running("w", 3, timeout=5)
    took = time.monotonic() - pushed
    assert took < 2.0, f"scale-up took {took:.2f}s with a 0.2s interval"
    assert first in pids
    a = auto(d)
    assert (a["depth"], a["desired"], a["min"], a["max"], a["error"]) == (6, 3, 1, 4, None)
    assert (a["last_decision"]["from"], a["last_decision"]["to"]) == (1, 3)
    assert "depth 6" in a["last_decision"]["why"]

    queue.set(50)                                            # wants 25: max is 4
    d.wait_running("w", 4, timeout=5)
    stays(d, 0.6, 4, "max = 4 is never exceeded")
    a = auto(d)
    assert (a["depth"], a["desired"]) == (50, 4)
    assert "clamped to [1, 4]" in a["last_decision"]["why"]
    newest = {p["pid"] for p in alive_slots(d)} - set(pids)

    drained = time.monotonic()
    queue.set(0)
    stays(d, 0.6, 4, "no scale-down before scale_down_delay")
    (left,) = d.wait_running("w", 1, timeout=5)
    waited = time.monotonic() - drained
    assert waited >= DELAY - 0.25, f"scaled down {waited:.2f}s after the drain, delay is {DELAY}s"
    assert left == first, "scale-down stops the most recently started first"
    assert not any(alive(p) for p in newest)
    a = auto(d)
    assert (a["depth"], a["desired"]) == (0, 1)
    assert (a["last_decision"]["from"], a["last_decision"]["to"]) == (4, 1)
    assert f"highest in the last {DELAY:g}s" in a["last_decision"]["why"]
    stays(d, 0.6, 1, "min = 1 is kept with an empty queue")

    text = d.ctl("status")
    assert text.returncode == 0, text.stderr
    assert "autoscale sqlite: depth 0, desired 1 in [1, 4]" in text.stdout, text.stdout
    as_json = json.loads(d.ctl("status", "--json").stdout)
    (w,) = [p for p in as_json["programs"] if p["name"] == "w"]
    assert w["autoscale"]["last_decision"] == a["last_decision"]
    log = d.stderr_text()                                    # every decision is logged with its reason
    assert "w: scale up 1 -> 3 (depth 6 / per_worker 2)" in log, log
    assert "w: scale down 4 -> 1 (" in log, log


def test_min_zero_starts_on_the_first_job_and_goes_back_to_zero(daemon: DaemonFactory,
                                                                  queue: SqliteQueue) -> None:
    d = daemon(sqlite_programs(queue.path, minimum=0, per_worker=10), reserve_memory=0)
    assert d.wait_running("w", 0) == []
    stays(d, 0.5, 0, "nothing runs for an empty queue with min = 0")
    queue.set(1)
    d.wait_running("w", 1, timeout=3)
    queue.set(0)
    d.wait_running("w", 0, timeout=5)
    a = auto(d)
    assert (a["desired"], a["last_decision"]["from"], a["last_decision"]["to"]) == (0, 1, 0)


def test_an_old_job_adds_a_process_each_interval_with_max_age(daemon: DaemonFactory, tmp_path: Path) -> None:
    db = tmp_path / "aged.db"
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, created REAL)")
    conn.close()
    programs = sqlite_programs(db, per_worker=100).replace(
        'query = "SELECT count(*) FROM jobs"',
        "query = \"SELECT count(*), strftime('%s', 'now') - min(created) FROM jobs\"\n        max_age = \"5s\"")
    d = daemon(programs, reserve_memory=0)
    d.wait_running("w", 1)
    conn = sqlite3.connect(db)
    with conn:                                               # one job, waiting for a minute already
        conn.execute("INSERT INTO jobs (created) VALUES (?)", (time.time() - 60,))
    conn.close()
    d.wait_running("w", 4, timeout=5)                        # +1 per reading, up to max
    a = auto(d)
    assert a["depth"] == 1 and a["age"] is not None and a["age"] >= 55, a
    assert "max_age 5s" in a["last_decision"]["why"], a["last_decision"]
    stays(d, 0.5, 4, "max = 4 holds against max_age too")


def test_short_of_memory_nothing_scales_up_above_min_and_status_says_why(daemon: DaemonFactory,
                                                                           queue: SqliteQueue) -> None:
    queue.set(6)                                             # wants 3
    d = daemon(sqlite_programs(queue.path, minimum=1), reserve_memory="1000000GiB")
    d.wait_running("w", 1)
    d.wait_status(lambda s: d.program("w", s)["autoscale"]["held"], timeout=3, what="held in status")
    a = auto(d)
    assert a["desired"] == 1 and a["depth"] == 6
    assert a["held"].startswith("holding at 1 (queue wants 3): memory available "), a["held"]
    assert "reserve_memory" in a["held"]
    stays(d, 0.6, 1, "no scale-up while memory is short")
    text = d.ctl("status")
    assert "holding at 1 (queue wants 3)" in text.stdout, text.stdout


# -- a broken source ---------------------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def redis_programs(url: str, key: str, *, minimum: int = 1, maximum: int = 4, per_worker: int = 1) -> str:
    return f"""
        [programs.w]
        command = "sleep 1001"
        start_seconds = "0s"
        stop_timeout = "2s"

        [programs.w.autoscale]
        source = "redis"
        url = "{url}"
        keys = ["{key}"]
        min = {minimum}
        max = {maximum}
        per_worker = {per_worker}
        interval = "{INTERVAL}"
        scale_down_delay = "{DELAY}s"
    """


def test_a_dead_broker_holds_the_count_shows_the_error_and_recovery_follows(daemon: DaemonFactory,
                                                                              own_redis: RedisServer) -> None:
    own_redis.start()
    with own_redis.client() as c:
        c.rpush("jobs", *range(3))
    d = daemon(redis_programs(own_redis.url, "jobs"), reserve_memory=0)
    pids = d.wait_running("w", 3, timeout=5)
    own_redis.save()                                         # the restarted server gets the jobs back

    own_redis.kill()                                         # SIGKILL by pid: the broker is gone
    killed = time.monotonic()
    d.wait_status(lambda s: (d.program("w", s) or {}).get("autoscale", {}).get("error"), timeout=3,
                  what="the source error in status")
    a = auto(d)
    assert a["error"].startswith(f"redis {own_redis.url}: "), a["error"]
    assert a["error_for"] is not None and a["error_for"] >= 0

    # held well past scale_down_delay, never scaled down; the daemon answers all along
    deadline = killed + 3 * DELAY
    while time.monotonic() < deadline:
        asked = time.monotonic()
        status = d.status()
        assert time.monotonic() - asked < 0.5, "status was slow while the source was down"
        procs = d.processes("w", None, status)
        assert sorted(p["pid"] for p in procs if p["state"] == "running") == sorted(pids), d.describe()
        time.sleep(0.1)
    a = auto(d)
    assert a["desired"] == 3 and a["depth"] == 3   # the last good reading is still shown
    assert a["error_for"] >= 2 * DELAY, a
    text = d.ctl("status", timeout=5)
    assert text.returncode == 0, text.stderr
    assert "source error for" in text.stdout and own_redis.url in text.stdout, text.stdout

    # the broker comes back with its data: the error clears, the count stays
    own_redis.start()
    d.wait_status(lambda s: (d.program("w", s) or {}).get("autoscale", {}).get("error") is None, timeout=5,
                  what="the error to clear after the broker came back")
    a = auto(d)
    assert (a["depth"], a["desired"], a["error_for"]) == (3, 3, None)
    assert sorted(d.pids("w")) == sorted(pids)
    with own_redis.client() as c:
        c.rpush("jobs", 4)                                   # and it follows the queue again
    d.wait_running("w", 4, timeout=5)


def test_a_clean_shutdown_closes_the_redis_autoscaler_without_errors(daemon: DaemonFactory,
                                                                     own_redis: RedisServer) -> None:
    """The reading loop and the keyspace listener are ended and awaited before the loop
    closes: no "Task was destroyed but it is pending!", no ERROR at all. With no worker
    to wait for, the shutdown is as quick as it gets."""
    own_redis.start()
    d = daemon(redis_programs(own_redis.url, "jobs", minimum=0), reserve_memory=0)
    d.wait_status(lambda s: d.program("w", s)["autoscale"]["depth"] == 0, timeout=5, what="the first reading")
    time.sleep(0.3)                                          # the listener is subscribed

    result = d.ctl("shutdown")
    assert result.returncode == 0, result.stderr
    assert d.wait_exit(15) == 0
    log = d.stderr_text()
    assert "Task was destroyed" not in log, log
    assert " ERROR " not in log, log
    assert log.rstrip().endswith("stopped"), log


def test_a_broker_that_never_answers_is_an_error_and_the_daemon_stays_responsive(daemon: DaemonFactory,
                                                                                  tmp_path: Path) -> None:
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)                                        # accepts (the kernel does), never answers
    port = silent.getsockname()[1]
    try:
        d = daemon(redis_programs(f"redis://127.0.0.1:{port}/0", "jobs", minimum=2), reserve_memory=0)
        d.wait_running("w", 2)
        d.wait_status(lambda s: (d.program("w", s) or {}).get("autoscale", {}).get("error"), timeout=3,
                      what="a timeout error in status")
        for _ in range(10):
            asked = time.monotonic()
            d.status()
            assert time.monotonic() - asked < 0.3, "status was slow while a read hung"
            time.sleep(0.05)
        stays(d, 0.5, 2, "min is kept while the source hangs")
    finally:
        silent.close()


def test_after_a_source_outage_the_count_holds_a_full_delay_and_the_outage_is_logged_once(
        daemon: DaemonFactory, queue: SqliteQueue) -> None:
    """Scaled to 3, the query fails for longer than scale_down_delay, then answers 0: the
    count stays at 3 for scale_down_delay after the last failed reading (not down at the
    first good one), and the log has one warning for the outage and one line at its end."""
    queue.set(6)                                             # wants 3
    d = daemon(sqlite_programs(queue.path, minimum=1), reserve_memory=0)
    pids = d.wait_running("w", 3, timeout=5)

    queue.execute("ALTER TABLE jobs RENAME TO jobs_away")     # every reading now fails
    d.wait_status(lambda s: d.program("w", s)["autoscale"]["error"], timeout=3, what="the source error")
    stays(d, 1.5 * DELAY, 3, "a failing source holds the count")

    queue.execute("ALTER TABLE jobs_away RENAME TO jobs", "DELETE FROM jobs")  # back, and empty
    fixed = time.monotonic()
    d.wait_status(lambda s: d.program("w", s)["autoscale"]["error"] is None, timeout=3,
                  what="the error to clear")
    stays(d, DELAY - 0.4, 3, "no scale-down before a full scale_down_delay of good readings")
    assert sorted(d.pids("w")) == sorted(pids)
    d.wait_running("w", 1, timeout=5)
    waited = time.monotonic() - fixed
    assert waited >= DELAY - 0.25, f"scaled down {waited:.2f}s after the source came back, delay is {DELAY}s"

    log = d.stderr_text().splitlines()
    failing = [line for line in log if "queue source failing" in line]
    assert len(failing) == 1, log
    assert " WARNING w: queue source failing: sqlite " in failing[0], failing
    assert failing[0].endswith("no such table: jobs; holding at 3"), failing
    recovered = [line for line in log if "queue source answers again" in line]
    assert len(recovered) == 1, log
    match = re.search(r" INFO w: queue source answers again after (\d+\.\d)s$", recovered[0])
    assert match is not None, recovered
    assert float(match.group(1)) >= 1.5 * DELAY, recovered


# -- workerctl scale: pin and hand back ---------------------------------------------------------------


def test_scale_pins_over_the_autoscaler_and_auto_hands_it_back(daemon: DaemonFactory, queue: SqliteQueue) -> None:
    queue.set(4)                                             # wants 2
    d = daemon(sqlite_programs(queue.path, maximum=4), reserve_memory=0)
    d.wait_running("w", 2, timeout=5)

    result = d.ctl("scale", "w", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "w: pinned to 3"
    d.wait_running("w", 3, timeout=5)
    assert d.program("w")["pinned"] == 3

    queue.set(20)                                            # the queue wants 4 (max): the pin wins
    d.wait_status(lambda s: d.program("w", s)["autoscale"]["desired"] == 4, timeout=3,
                  what="the autoscaler to keep reading while pinned")
    stays(d, 0.6, 3, "pinned to 3")
    queue.set(0)
    stays(d, DELAY + 0.5, 3, "a pin is not scaled down either")

    result = d.ctl("scale", "w", "auto")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("w: back to the autoscaler"), result.stdout
    assert d.program("w")["pinned"] is None
    d.wait_running("w", 1, timeout=5)                        # the queue is empty and the delay is over


# -- reload ------------------------------------------------------------------------------------------


def test_a_reload_that_changes_only_autoscale_restarts_nothing(daemon: DaemonFactory, queue: SqliteQueue) -> None:
    queue.set(6)
    d = daemon(sqlite_programs(queue.path, maximum=4), reserve_memory=0)
    pids = d.wait_running("w", 3, timeout=5)

    d.write_config(sqlite_programs(queue.path, maximum=6, per_worker=1), reserve_memory=0)
    result = d.ctl("reload")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["scaled: w 1..4 (sqlite) -> 1..6 (sqlite)"], result.stdout
    now = d.wait_running("w", 6, timeout=5)                 # 6 / per_worker 1, within the new max
    assert set(pids) <= set(now), "a process was restarted by an [autoscale]-only reload"
    assert all(alive(p) for p in pids)
    assert (auto(d)["max"], auto(d)["desired"]) == (6, 6)


def test_a_reload_can_turn_autoscaling_off_and_on_without_restarts(daemon: DaemonFactory,
                                                                    queue: SqliteQueue) -> None:
    queue.set(6)
    d = daemon(sqlite_programs(queue.path), reserve_memory=0)
    pids = d.wait_running("w", 3, timeout=5)
    fixed = """
        [programs.w]
        command = "sleep 1000"
        start_seconds = "0s"
        stop_timeout = "2s"
        processes = 2
    """
    d.write_config(fixed, reserve_memory=0)
    result = d.ctl("reload")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["scaled: w 1..4 (sqlite) -> 2"], result.stdout
    now = d.wait_running("w", 2, timeout=5)
    assert set(now) <= set(pids)
    assert d.program("w")["autoscale"] is None
    queue.set(50)
    stays(d, 0.6, 2, "a fixed count no longer follows the queue")

    d.write_config(sqlite_programs(queue.path), reserve_memory=0)
    result = d.ctl("reload")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["scaled: w 2 -> 1..4 (sqlite)"], result.stdout
    assert set(now) <= set(d.wait_running("w", 4, timeout=5))


def test_a_reload_during_the_delay_does_not_skip_the_delay(daemon: DaemonFactory, queue: SqliteQueue) -> None:
    """The queue drains, then a reload changes [autoscale] (here: max). The count must
    still come down only scale_down_delay after the last reading that wanted it."""
    delay = 3.0
    queue.set(6)
    d = daemon(sqlite_programs(queue.path, maximum=4, delay=delay), reserve_memory=0)
    pids = d.wait_running("w", 3, timeout=5)
    queue.set(0)
    time.sleep(0.3)                                          # a reading or two of the empty queue

    d.write_config(sqlite_programs(queue.path, maximum=5, delay=delay), reserve_memory=0)
    result = d.ctl("reload")
    assert result.returncode == 0, result.stderr
    stays(d, 1.5, 3, "a reload must not cut scale_down_delay short")
    assert sorted(d.pids("w")) == sorted(pids)
    d.wait_running("w", 1, timeout=delay + 3)


def test_an_invalid_autoscale_on_reload_keeps_the_running_config(daemon: DaemonFactory, queue: SqliteQueue) -> None:
    d = daemon(sqlite_programs(queue.path, maximum=4), reserve_memory=0)
    (pid,) = d.wait_running("w", 1)
    good = d.config_path.read_text()

    d.write_config(sqlite_programs(queue.path, minimum=5, maximum=2), reserve_memory=0)
    result = d.ctl("reload")
    assert result.returncode == 1, result
    line = one_line(result.stderr)
    assert "programs.w.autoscale.max: must be >= min (5)" in line, line
    assert "the running config stays in force" in line, line

    d.write_config(sqlite_programs(queue.path).replace('source = "sqlite"', 'source = "kafka"'),
                   reserve_memory=0)
    result = d.ctl("reload")
    assert result.returncode == 1, result
    assert "programs.w.autoscale.source: expected one of" in one_line(result.stderr)

    # the old config is still in force: same process, and the autoscaler still follows
    assert d.pids("w") == [pid]
    assert (auto(d)["min"], auto(d)["max"]) == (1, 4)
    queue.set(8)
    d.wait_running("w", 4, timeout=5)
    assert d.config_path.read_text() != good


# -- end to end: RQ workers draining a real RQ queue ------------------------------------------------------

JOBS_MODULE = """
    import os
    import time


    def work(i, out):
        time.sleep(0.2)
        with open(out, "a") as f:
            f.write(f"{i} {os.getppid()}\\n")
"""


@pytest.fixture
def rq_queue(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    rq = pytest.importorskip("rq", reason="RQ is in the test extra")
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        message = f"Redis at {REDIS_URL} is not reachable ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: a missing service is a failure)")
        pytest.skip(message)
    name = f"wdtest-{uuid.uuid4().hex[:8]}"
    q = rq.Queue(name, connection=client)
    yield q, name
    try:
        for job_id in q.get_job_ids() + list(q.finished_job_registry.get_job_ids()) + \
                list(q.failed_job_registry.get_job_ids()):
            client.delete(f"rq:job:{job_id}", f"rq:results:{job_id}")
        keys = list(client.scan_iter(match=f"*{name}*", count=1000))
        if keys:
            client.delete(*keys)
        client.srem("rq:queues", f"rq:queue:{name}")
    finally:
        client.close()


def test_rq_workers_are_scaled_from_zero_drain_the_queue_and_go_back_to_zero(
        daemon: DaemonFactory, tmp_path: Path, rq_queue: tuple[Any, str]) -> None:
    q, name = rq_queue
    (tmp_path / "wdjobs.py").write_text(textwrap.dedent(JOBS_MODULE))
    out = tmp_path / "out.txt"
    rq_bin = Path(sys.executable).with_name("rq")
    assert rq_bin.exists(), rq_bin
    d = daemon(f"""
        [programs.w]
        command = "{rq_bin} worker {name} --url {REDIS_URL}"
        directory = "{tmp_path}"
        environment = {{ PYTHONPATH = "{tmp_path}" }}
        start_seconds = "0s"
        stop_timeout = "10s"

        [programs.w.autoscale]
        source = "redis"
        url = "{REDIS_URL}"
        format = "rq"
        queue = "{name}"
        min = 0
        max = 4
        per_worker = 5
        interval = "{INTERVAL}"
        scale_down_delay = "{DELAY}s"
    """, reserve_memory=0)
    assert d.wait_running("w", 0) == []

    jobs = [q.enqueue("wdjobs.work", i, str(out)) for i in range(30)]
    assert q.count >= 20                                     # nothing consumed them yet
    most = 0
    workers: set[int] = set()

    def all_done() -> bool:
        nonlocal most
        status = d.status()
        procs = alive_slots(d, "w")
        most = max(most, len(procs))
        workers.update(p["pid"] for p in procs)
        assert len(procs) <= 4, f"max = 4 exceeded: {procs}"
        lines = out.read_text().splitlines() if out.exists() else []
        return len(lines) == 30 and status is not None

    d.wait_until(lambda: most >= 2 or all_done(), timeout=10, what="RQ workers to be started")
    d.wait_until(all_done, timeout=30, what="the 30 jobs to be done")
    assert most == 4, f"30 jobs at 5 per worker should have run max = 4 workers, saw {most}"
    assert q.count == 0
    assert q.failed_job_registry.count == 0
    done = [line.split() for line in out.read_text().splitlines()]
    assert sorted(int(i) for i, _ in done) == list(range(30))
    parents = {int(p) for _, p in done}
    assert len(parents) >= 2 and parents <= workers, (parents, workers)
    assert all(job.get_status(refresh=True) == "finished" for job in jobs)

    d.wait_running("w", 0, timeout=DELAY + 10)               # back to zero after the delay
    a = auto(d)
    assert (a["depth"], a["desired"], a["error"]) == (0, 0, None)
    assert not any(alive(p) for p in workers)
