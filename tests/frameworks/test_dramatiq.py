"""Dramatiq (one worker process, two threads) on RabbitMQ: a stop and a restart during
two running jobs wait for both, and every job runs once.

What Dramatiq does on SIGTERM (dramatiq/cli.py): the main process forwards the signal to
each worker process and waits for them. A worker process takes its first SIGTERM as
"stop": it stops consuming, lets its threads finish their messages (up to
--worker-shutdown-timeout, 10 minutes) and exits. It takes a *second* SIGTERM as "kill
now" (`sys.exit(RET_KILLED)`): its daemon threads die mid-job and the messages they held
go back to the queue unacknowledged, to run again. A SIGTERM to the whole process group
is exactly that second signal: the worker process gets one from the group and one
forwarded by its parent.
"""

from __future__ import annotations

from pathlib import Path

from tests.frameworks.conftest import (
    APPS,
    BIN,
    JOB_SECONDS,
    STOP_TIMEOUT,
    Ledger,
    app_environment,
    check_restart,
    check_stop,
)
from tests.runtime.conftest import DaemonFactory
from tests.sources.services import RABBITMQ_URL


def program(tmp_path: Path, tag: str) -> str:
    env = app_environment(tmp_path, WDTEST_BROKER=RABBITMQ_URL, WDTEST_QUEUE=tag)
    return f"""
        [programs.dramatiq]
        command = "{BIN}/dramatiq dramatiq_app --processes 1 --threads 2"
        directory = "{APPS}"
        environment = {env}
        start_seconds = "1s"
        stop_timeout = "{STOP_TIMEOUT:g}s"
    """


def enqueue(tag: str, count: int) -> list[str]:
    from dramatiq import Message
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    broker = RabbitmqBroker(url=RABBITMQ_URL)
    jobs = [f"{tag}-{i}" for i in range(count)]
    try:
        for job in jobs:
            broker.enqueue(Message(queue_name=tag, actor_name="long_job", args=(job, JOB_SECONDS), kwargs={},
                                   options={}))
    finally:
        broker.close()
    return jobs


def test_a_stop_waits_for_the_running_jobs(daemon: DaemonFactory, tmp_path: Path, rabbitmq_tag: str) -> None:
    d = daemon(program(tmp_path, rabbitmq_tag))
    enqueue(rabbitmq_tag, 2)
    check_stop(d, Ledger(tmp_path), "dramatiq", running=2)


def test_a_restart_waits_for_the_running_jobs_and_runs_none_twice(
        daemon: DaemonFactory, tmp_path: Path, rabbitmq_tag: str) -> None:
    d = daemon(program(tmp_path, rabbitmq_tag))
    jobs = enqueue(rabbitmq_tag, 4)
    check_restart(d, Ledger(tmp_path), "dramatiq", running=2, every=jobs)
