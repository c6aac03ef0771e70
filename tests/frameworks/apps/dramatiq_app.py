"""A Dramatiq actor on the RabbitMQ queue the test names (WDTEST_BROKER, WDTEST_QUEUE);
no retries, so that a job that runs twice was delivered twice."""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

import ledger

dramatiq.set_broker(RabbitmqBroker(url=os.environ["WDTEST_BROKER"]))


@dramatiq.actor(actor_name="long_job", queue_name=os.environ["WDTEST_QUEUE"], max_retries=0)
def long_job(job_id: str, seconds: float) -> None:
    ledger.long_job(job_id, seconds)
