"""Real job frameworks under a real daemon: the runtime tests' `daemon` fixture, the
brokers on 127.0.0.1, and a ledger of the jobs that started and finished.

Every job is `apps/ledger.py:long_job`, which writes its start and its finish to files in
the test's tmp dir; `Ledger` reads them back. A service that is down skips the tests
that need it, with the reason, except when CI=true, where it is a failure
(tests/sources/services.py). Redis keys live in db 13 under a random tag, RabbitMQ
queues carry the tag in their names; both are deleted after the test.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.conftest import Daemon, daemon, pytest_runtest_makereport  # noqa: F401
from tests.sources.services import RABBITMQ_URL, delete_tagged, missing, need_client, need_port

APPS = Path(__file__).with_name("apps")
REDIS_URL = "redis://127.0.0.1:6379/13"
BIN = Path(sys.executable).parent
#: How long each job sleeps: long enough that every stop lands in the middle of one.
JOB_SECONDS = 3.0
#: A worker's stop_timeout: far longer than a job, so a stop that ends early was not SIGKILL's.
STOP_TIMEOUT = 10.0
#: Slack for a stop's end after its last job's end (a framework's own shutdown, the reap).
SLACK = 0.3


@pytest.fixture
def redis_tag() -> Iterator[tuple[Any, str]]:
    """(a client of db 13, a random tag); every key holding the tag is deleted afterwards."""
    redis = need_client("redis", "redis")
    need_port("Redis", 6379)
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    tag = f"wdtest-{uuid.uuid4().hex[:8]}"
    yield client, tag
    delete_tagged(client, tag)


@pytest.fixture
def rabbitmq_tag() -> Iterator[str]:
    """A random queue name; it and Dramatiq's delay and dead-letter queues are deleted afterwards."""
    pika = need_client("pika", "rabbitmq")
    need_port("RabbitMQ", 5672)
    tag = f"wdtest-{uuid.uuid4().hex[:8]}"
    yield tag
    try:
        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    except pika.exceptions.AMQPError as exc:
        missing("RabbitMQ at 127.0.0.1:5672", str(exc))
    try:
        channel = connection.channel()
        for name in (tag, f"{tag}.DQ", f"{tag}.XQ"):
            channel.queue_delete(name)
    finally:
        connection.close()


def app_environment(ledger: Path, **extra: str) -> str:
    """The `environment = {...}` inline table of a program running an app from apps/."""
    items = {"WDTEST_LEDGER": str(ledger), "PYTHONPATH": str(APPS), **extra}
    return "{ " + ", ".join(f'{k} = "{v}"' for k, v in items.items()) + " }"


@dataclass(frozen=True)
class Entry:
    job: str
    pid: int
    at: float


class Ledger:
    """The jobs' own record of what ran: `started` and `finished` lines in a directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def entries(self, kind: str) -> list[Entry]:
        try:
            text = (self.dir / kind).read_text()
        except FileNotFoundError:
            return []
        return [Entry(job, int(pid), float(at)) for job, pid, at in (line.split() for line in text.splitlines())]

    def started(self) -> Counter[str]:
        return Counter(e.job for e in self.entries("started"))

    def finished(self) -> Counter[str]:
        return Counter(e.job for e in self.entries("finished"))

    def describe(self) -> str:
        return f"started: {dict(self.started())}, finished: {dict(self.finished())}"

    def wait_started(self, d: Daemon, count: int, timeout: float = 30.0) -> list[str]:
        """Wait until `count` jobs are running (started, not finished); returns their ids."""
        def running() -> list[str] | None:
            jobs = sorted(set(self.started()) - set(self.finished()))
            return jobs if len(jobs) >= count else None

        return d.wait_until(running, timeout, f"{count} job(s) running ({self.describe()})")  # type: ignore[no-any-return]

    def wait_finished(self, d: Daemon, jobs: list[str], timeout: float = 30.0) -> None:
        d.wait_until(lambda: set(jobs) <= set(self.finished()), timeout,
                     f"jobs {jobs} to finish ({self.describe()})")

    def assert_once(self, jobs: list[str]) -> None:
        """Each job started once and finished once: none lost, none run twice."""
        started, finished = self.started(), self.finished()
        assert {j: started[j] for j in jobs} == dict.fromkeys(jobs, 1), f"ran twice? {self.describe()}"
        assert {j: finished[j] for j in jobs} == dict.fromkeys(jobs, 1), f"lost? {self.describe()}"

    def assert_stop_waited(self, running: list[str], began: float, took: float) -> None:
        """The stop that began at `began` (wall clock) and took `took` seconds ended only
        after every job running at its start finished, and it finished them (no SIGKILL)."""
        finished = {e.job: e.at for e in self.entries("finished")}
        lost = [j for j in running if j not in finished]
        assert not lost, f"the stop returned after {took:.2f}s with jobs {lost} unfinished ({self.describe()})"
        last = max(finished[j] for j in running)
        assert took >= last - began - SLACK, \
            f"the stop took {took:.2f}s, less than the {last - began:.2f}s its jobs still had to run"


def timed_ctl(d: Daemon, *args: str, timeout: float = 30.0) -> tuple[float, float]:
    """Run `workerctl ARGS...`, which must succeed: (its wall-clock start, seconds it took)."""
    began, t0 = time.time(), time.monotonic()
    result = d.ctl(*args, timeout=timeout)
    took = time.monotonic() - t0
    assert result.returncode == 0, f"workerctl {' '.join(args)}: {result.stderr}{d.describe()}"
    return began, took


def check_stop(d: Daemon, ledger: Ledger, program: str, running: int) -> None:
    """`workerctl stop` while `running` jobs run: it waits for them, and each ran once."""
    jobs = ledger.wait_started(d, running)
    began, took = timed_ctl(d, "stop", program)
    ledger.assert_stop_waited(jobs, began, took)
    ledger.assert_once(jobs)


def check_restart(d: Daemon, ledger: Ledger, program: str, running: int, every: list[str]) -> None:
    """`workerctl restart` while `running` jobs run: it waits for them; then every job
    enqueued (`every`) finishes, each once."""
    jobs = ledger.wait_started(d, running)
    began, took = timed_ctl(d, "restart", program)
    ledger.assert_stop_waited(jobs, began, took)
    ledger.wait_finished(d, every)
    ledger.assert_once(every)


def check_scale_down(d: Daemon, ledger: Ledger, program: str, running: int) -> list[str]:
    """An autoscaled program scales down to zero while `running` jobs run (the queue is
    empty once they are taken): each of them finishes, once; returns their ids."""
    jobs = ledger.wait_started(d, running)
    d.wait_running(program, 0, timeout=STOP_TIMEOUT + 5)
    ledger.assert_once(jobs)
    return jobs


def autoscale(program: str, source: str, per_worker: int, max_processes: int = 2) -> str:
    """An `[autoscale]` table that starts workers at once and stops them 1 s after the
    queue is empty: in the middle of the jobs they took."""
    return f"""
        [programs.{program}.autoscale]
        url = "{REDIS_URL}"
        {source}
        min = 0
        max = {max_processes}
        per_worker = {per_worker}
        interval = "0.2s"
        scale_down_delay = "1s"
    """
