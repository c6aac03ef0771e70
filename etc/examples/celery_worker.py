"""A Celery app whose workers talk to workerd through Celery's signals: READY=1 when the
worker is ready to consume, BUSY=1/BUSY=0 around each task. The task signals fire in the
prefork pool's child processes, which are in the worker's session, so workerd attributes
their messages to the worker.

    celery -A etc.examples.celery_worker worker -Q email --concurrency 1

workers.toml:

    [programs.celery-email]
    command = "celery -A etc.examples.celery_worker worker -Q email --concurrency 1"
    ready = "notify"
    start_timeout = "2m"
    stop_timeout = "5m"       # above the longest task: Celery's warm shutdown waits for it

With --concurrency N > 1, one worker runs N tasks at once: it is busy from the first
BUSY=1 to the last BUSY=0 of a burst only approximately; run one process per task slot
(--concurrency 1, and `processes` or [autoscale] for the count) for exact busy/idle.
"""

from __future__ import annotations

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_ready

from workerd import worker

app = Celery("app", broker="redis://127.0.0.1:6379/0")


@worker_ready.connect
def _ready(**_: object) -> None:
    worker.ready()


@task_prerun.connect
def _busy(**_: object) -> None:
    worker.busy()


@task_postrun.connect
def _idle(**_: object) -> None:
    worker.idle()


@app.task
def send_email(address: str) -> str:
    return f"sent to {address}"
