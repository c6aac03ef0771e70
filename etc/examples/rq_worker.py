"""An RQ worker that talks to workerd: READY=1 once connected, BUSY=1/BUSY=0 around each
job (status shows busy/idle and the job's age, /metrics the job durations, scale-down
stops idle workers first), WATCHDOG=1 on each of RQ's heartbeats.

    python etc/examples/rq_worker.py QUEUE [REDIS_URL]

workers.toml:

    [programs.rq-email]
    command = "python etc/examples/rq_worker.py email redis://127.0.0.1:6379/0"
    ready = "notify"
    watchdog = "10m"          # RQ heartbeats at least every worker_ttl (7 min by default)
"""

from __future__ import annotations

import sys

from redis import Redis
from rq import Queue, Worker

from workerd import worker


class NotifyingWorker(Worker):
    def execute_job(self, job, queue):  # type: ignore[no-untyped-def]
        # The job runs in a forked "work horse", a child in this worker's session: its
        # own notifications would be attributed to this worker too.
        with worker.job():
            return super().execute_job(job, queue)

    def heartbeat(self, timeout=None, pipeline=None):  # type: ignore[no-untyped-def]
        result = super().heartbeat(timeout, pipeline)
        worker.watchdog()
        return result


def main() -> None:
    queue = sys.argv[1]
    connection = Redis.from_url(sys.argv[2] if len(sys.argv) > 2 else "redis://127.0.0.1:6379/0")
    connection.ping()
    rq_worker = NotifyingWorker([Queue(queue, connection=connection)], connection=connection)
    worker.ready()
    worker.status(f"consuming {queue}")
    rq_worker.work()


if __name__ == "__main__":
    main()
