"""The real daemon fixture of tests/runtime, a small HTTP client for the console, and the
programs and `workerd check` the console's tests share."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.runtime.conftest import Daemon, daemon, pytest_runtest_makereport  # noqa: F401

TOKEN = "console-token-for-tests-0123"
PROGRAMS = """
    [programs.web-mailer]
    command = "sh -c 'echo hello from the mailer; exec sleep 1000'"
    processes = 2
    start_seconds = "0s"
    stop_timeout = "2s"
"""


class Reply:
    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status = status
        self.body = body
        self.headers = headers

    def json(self) -> Any:
        return json.loads(self.body)


def call(port: int, method: str, path: str, body: Any = None, token: str | None = TOKEN, **headers: str) -> Reply:
    """One request to the console at 127.0.0.1:PORT, with TOKEN as `Authorization: Bearer`
    (None: none); header names as keyword arguments with _ for - (Host defaults to the
    console's own)."""
    sent = {"Host": f"127.0.0.1:{port}"}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    sent.update({name.replace("_", "-"): value for name, value in headers.items()})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        return Reply(response.status, response.read(), {k.lower(): v for k, v in response.getheaders()})
    finally:
        connection.close()


def act(port: int, program: str, action: str, body: Any = None, token: str | None = TOKEN, **headers: str) -> Reply:
    headers = {"Content_Type": "application/json", **headers}
    return call(port, "POST", f"/api/programs/{program}/{action}", body if body is not None else {}, token, **headers)


def check(d: Daemon) -> subprocess.CompletedProcess[str]:
    """`workerd check` on the daemon's config."""
    return subprocess.run([str(Path(sys.executable).with_name("workerd")), "check", "-c", str(d.config_path)],
                          capture_output=True, text=True, timeout=30)
