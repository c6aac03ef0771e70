"""An RQ worker that talks to workerd: READY=1 once connected, BUSY=1/BUSY=0 around each
job (status shows busy/idle and the job's age, /metrics the job durations, scale-down
stops idle workers first), WATCHDOG=1 on each of RQ's heartbeats.

    python etc/examples/rq_worker.py QUEUE [REDIS_URL]

workers.toml:

    [programs.rq-email]
    command = "python /srv/app/rq_worker.py email redis://127.0.0.1:6379/0"
    directory = "/srv/app"    # where the jobs' modules are: it goes on sys.path, as with `rq worker`
    ready = "notify"
    watchdog = "10m"          # RQ heartbeats at least every worker_ttl (7 min by default)
    stop_timeout = "5m"       # SIGTERM: RQ finishes the running job; longer than your longest job
"""

from __future__ import annotations

import os
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
    # The jobs' modules are the app's, in the program's `directory` (this process's cwd).
    # `rq worker` puts it on sys.path (--path, "." by default); run as a script, only the
    # script's own directory is there, and every job would fail to import.
    sys.path.append(os.getcwd())
    queue = sys.argv[1]
    connection = Redis.from_url(sys.argv[2] if len(sys.argv) > 2 else "redis://127.0.0.1:6379/0")
    connection.ping()
    rq_worker = NotifyingWorker([Queue(queue, connection=connection)], connection=connection)
    worker.ready()
    worker.status(f"consuming {queue}")
    rq_worker.work()


if __name__ == "__main__":
    main()
