"""A redis-server of the test's own, on a free loopback port, to stop and start at will.

Started as `redis-server --port P --bind 127.0.0.1 --save '' --appendonly no` with its
working directory (and `dbfilename`) in the test's tmp dir, so `save()` + `kill()` +
`start()` brings the same data back. Stopped by its pid only; `stop()` is safe to call
twice and is always called at teardown by the fixtures that use it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import free_port

REDIS_SERVER = shutil.which("redis-server")


class RedisServer:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        if REDIS_SERVER is None:
            if os.environ.get("CI") == "true":
                pytest.fail("redis-server is not installed (CI=true: a missing service is a failure)")
            pytest.skip("redis-server is not installed")
        self.dir = workdir
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 5.0) -> RedisServer:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        argv = [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.dir), "--dbfilename", f"dump-{self.port}.rdb"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"redis-server on port {self.port} exited with {self.proc.returncode}")
            if self.ping():
                return self
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"redis-server on port {self.port} did not answer within {timeout:g}s")
            time.sleep(0.02)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def client(self):  # type: ignore[no-untyped-def]
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def save(self) -> None:
        """Write the data to the dump file, so that a restart brings it back."""
        with self.client() as c:
            c.save()

    def kill(self) -> None:
        """SIGKILL by pid (a crash, not a shutdown), and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        self.kill()
