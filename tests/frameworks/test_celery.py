"""Celery with its default prefork pool (--concurrency 2) on Redis: a stop and a restart
during two running tasks wait for both, and every task runs once.

What Celery does on SIGTERM (celery/apps/worker.py, celery/concurrency/prefork.py): the
main process starts a *warm shutdown*: it stops consuming, hands back the messages it
had reserved, waits for the tasks running in its pool, then exits. A pool child resets
SIGTERM to the default action (WORKER_SIGRESET), so a SIGTERM that reaches the children
too (a signal to the whole process group) kills them mid-task: the parent logs
`WorkerLostError: Worker exited prematurely: signal 15 (SIGTERM)` and the task, acked
when it started (Celery's default, acks_late off), is lost.
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

#: No broadcast chatter between workers: each test's workers are on their own.
QUIET = "--without-mingle --without-gossip --without-heartbeat"


def program(tmp_path: Path, tag: str, autoscale: str = "") -> str:
    env = app_environment(tmp_path, WDTEST_BROKER=REDIS_URL, WDTEST_PREFIX=f"{tag}:")
    return f"""
        [programs.celery]
        command = "{BIN}/celery -A celery_app worker --pool prefork --concurrency 2 -Q {tag} {QUIET} --loglevel info"
        directory = "{APPS}"
        environment = {env}
        start_seconds = "1s"
        stop_timeout = "{STOP_TIMEOUT:g}s"
        {autoscale}
    """


def enqueue(tag: str, count: int) -> list[str]:
    from celery import Celery

    client = Celery("wdtest-client", broker=REDIS_URL)
    client.conf.broker_transport_options = {"global_keyprefix": f"{tag}:"}
    jobs = [f"{tag}-{i}" for i in range(count)]
    try:
        for job in jobs:
            client.send_task("long_job", args=[job, JOB_SECONDS], queue=tag)
    finally:
        client.close()
    return jobs


def test_a_stop_waits_for_the_running_tasks(daemon: DaemonFactory, tmp_path: Path,
                                            redis_tag: tuple[Any, str]) -> None:
    _, tag = redis_tag
    d = daemon(program(tmp_path, tag))
    enqueue(tag, 2)
    check_stop(d, Ledger(tmp_path), "celery", running=2)


def test_a_restart_waits_for_the_running_tasks_and_runs_the_rest_once(
        daemon: DaemonFactory, tmp_path: Path, redis_tag: tuple[Any, str]) -> None:
    _, tag = redis_tag
    d = daemon(program(tmp_path, tag))
    jobs = enqueue(tag, 4)
    check_restart(d, Ledger(tmp_path), "celery", running=2, every=jobs)


def test_a_scale_down_waits_for_the_running_tasks(daemon: DaemonFactory, tmp_path: Path,
                                                  redis_tag: tuple[Any, str]) -> None:
    """Two tasks wake one worker (two per worker), it takes both, and the empty queue
    stops it. The Redis list is the queue's name under the key prefix."""
    _, tag = redis_tag
    table = autoscale("celery", f'source = "redis"\nformat = "celery"\nqueue = "{tag}:{tag}"', per_worker=2)
    d = daemon(program(tmp_path, tag, table), reserve_memory=0)
    enqueue(tag, 2)
    check_scale_down(d, Ledger(tmp_path), "celery", running=2)
