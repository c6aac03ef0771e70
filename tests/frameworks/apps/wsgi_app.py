"""A WSGI app that answers with the pid of its gunicorn master (which master served)."""

from __future__ import annotations

import os


def app(environ, start_response):  # type: ignore[no-untyped-def]
    body = str(os.getppid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
