"""RQ (`rq worker`, one job at a time) on Redis: a stop, a restart and an autoscaled
scale-down during running jobs wait for them, and every job runs once.

What RQ does on SIGTERM (rq/worker/base.py, rq/worker/worker_classes.py): the worker's
first SIGTERM (or SIGINT) is a *warm shutdown*: it stops dequeuing and, if a job is
running, waits for its work horse to finish it; a second one within the job is a cold
shutdown that kills the horse. The horse is forked per job and calls setpgrp(): it
leaves the worker's process group (a group signal does not reach it) but stays in its
session. It resets SIGTERM to the default action, so a SIGTERM that reaches it kills
the job, which RQ then marks failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.frameworks.conftest import (
    APPS,
    BIN,
    JOB_SECONDS,
    REDIS_URL,
    STOP_TIMEOUT,
    Ledger,
    app_environment,
    autoscale,
    check_restart,
    check_scale_down,
    check_stop,
)
from tests.runtime.conftest import DaemonFactory


def program(tmp_path: Path, tag: str, processes: int = 1, autoscale: str = "") -> str:
    return f"""
        [programs.rq]
        command = "{BIN}/rq worker {tag} --url {REDIS_URL}"
        directory = "{APPS}"
        environment = {app_environment(tmp_path)}
        processes = {processes}
        start_seconds = "0.5s"
        stop_timeout = "{STOP_TIMEOUT:g}s"
        {autoscale}
    """


def enqueue(client: Any, tag: str, count: int) -> list[str]:
    from rq import Queue

    queue = Queue(tag, connection=client)
    jobs = [f"{tag}-{i}" for i in range(count)]
    for job in jobs:
        queue.enqueue("rq_jobs.long_job", job, JOB_SECONDS, job_id=job, result_ttl=0, failure_ttl=60)
    return jobs


def test_a_stop_waits_for_the_running_jobs(daemon: DaemonFactory, tmp_path: Path,
                                           redis_tag: tuple[Any, str]) -> None:
    client, tag = redis_tag
    d = daemon(program(tmp_path, tag, processes=2))
    enqueue(client, tag, 2)
    check_stop(d, Ledger(tmp_path), "rq", running=2)


def test_a_restart_waits_for_the_running_jobs_and_runs_the_rest_once(
        daemon: DaemonFactory, tmp_path: Path, redis_tag: tuple[Any, str]) -> None:
    client, tag = redis_tag
    d = daemon(program(tmp_path, tag, processes=2))
    jobs = enqueue(client, tag, 3)
    check_restart(d, Ledger(tmp_path), "rq", running=2, every=jobs)


def test_a_scale_down_waits_for_the_running_jobs(daemon: DaemonFactory, tmp_path: Path,
                                                 redis_tag: tuple[Any, str]) -> None:
    """Two jobs wake two workers; each takes one, and the empty queue stops both."""
    client, tag = redis_tag
    table = autoscale("rq", f'source = "redis"\nformat = "rq"\nqueue = "{tag}"', per_worker=1)
    d = daemon(program(tmp_path, tag, autoscale=table), reserve_memory=0)
    ledger = Ledger(tmp_path)
    jobs = enqueue(client, tag, 2)
    assert sorted(check_scale_down(d, ledger, "rq", running=2)) == jobs
    assert len({e.pid for e in ledger.entries("started")}) == 2, f"one job per worker: {ledger.entries('started')}"
