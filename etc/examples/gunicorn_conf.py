"""gunicorn settings for workerd's rolling restarts: READY=1 once a worker has loaded the
app and listens, not when the arbiter boots.

gunicorn's arbiter sends READY=1 (to NOTIFY_SOCKET, as under systemd) as it boots,
before it forks a worker: before the app is loaded, and with --reuse-port (which two
gunicorns on one port need, as a rolling restart runs them) before anything listens.
workerd would stop the old gunicorn then, and requests would be refused until the new
workers listen. So the arbiter never sees NOTIFY_SOCKET, and each worker says READY=1
when it is ready to serve.

    gunicorn -c etc/examples/gunicorn_conf.py --bind 127.0.0.1:8000 app:application

workers.toml:

    [programs.web]
    command = "gunicorn -c etc/examples/gunicorn_conf.py --bind 127.0.0.1:8000 app:application"
    ready = "notify"
    rolling = true
    stop_timeout = "35s"      # gunicorn's graceful_timeout (30 s) and a margin
"""

from __future__ import annotations

import os
from typing import Any

from workerd import worker

# Read by the arbiter when it sends; taken away before it starts, given back to each worker.
_notify_socket = os.environ.pop("NOTIFY_SOCKET", None)

reuse_port = True
preload_app = True     # the app is imported once, before the workers fork: a broken app fails the start


def post_worker_init(_: Any) -> None:
    """In each worker, after its socket is listening and the app is loaded."""
    if _notify_socket is not None:
        os.environ["NOTIFY_SOCKET"] = _notify_socket
        worker.ready()
