"""A Celery app on the Redis db and key prefix the test gives it (WDTEST_BROKER,
WDTEST_PREFIX): no remote control, so that every key it makes carries the prefix."""

from __future__ import annotations

import os

from celery import Celery

import ledger

app = Celery("wdtest", broker=os.environ["WDTEST_BROKER"])
app.conf.update(
    broker_transport_options={"global_keyprefix": os.environ["WDTEST_PREFIX"]},
    worker_enable_remote_control=False,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="long_job")
def long_job(job_id: str, seconds: float) -> str:
    return ledger.long_job(job_id, seconds)
