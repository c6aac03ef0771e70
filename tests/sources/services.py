"""Shared helpers for the tests of the postgres, rabbitmq, nats, sqs, command and http
sources: the services on this machine, a moto server of the test's own, a Launcher
for tests, ports that refuse or never answer, and config loading.

A service that is down skips the tests that need it, with the reason, except when
CI=true, where it is a failure (CI starts every service). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop

from tests.helpers import free_port
from workerd.config.load import ConfigError, load
from workerd.config.model import AutoscaleConfig
from workerd.core.scaling import QueueReading
from workerd.exit_status import ExitStatus
from workerd.sources.base import PushSource, Source
from workerd.sources.child import Launched

T = TypeVar("T")

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
NATS_URL = "nats://127.0.0.1:4222"
#: Longest any one read may take in these tests: a hang fails instead of blocking the run.
READ_LIMIT = 10.0


def missing(service: str, why: str) -> None:
    """Skip (locally) or fail (CI=true) a test whose service is not there."""
    message = f"{service} is not reachable ({why}); start it to run these tests"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: a missing service is a failure)", pytrace=False)
    pytest.skip(message)


def need_client(module: str, extra: str) -> Any:
    """Import a source's client library for a test module; when it is not installed,
    skip the module (locally) or fail (CI=true: the test extra installs every client)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        message = f"{module} is not installed ({exc}): pip install 'workerd[{extra}]'"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: the test extra installs it)", pytrace=False)
        pytest.skip(message, allow_module_level=True)


def delete_tagged(client: Any, tag: str) -> None:
    """Delete every Redis key holding `tag` (a test's random tag), and close the client."""
    try:
        keys = list(client.scan_iter(match=f"*{tag}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def listening(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def need_port(service: str, port: int) -> None:
    if not listening(port):
        missing(f"{service} at 127.0.0.1:{port}", "connection refused")


def run(body: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop, the daemon's loop."""
    return uvloop.run(body)


async def read(source: Source) -> QueueReading:
    return await asyncio.wait_for(source.read(), READ_LIMIT)


async def read_closing(source: Source) -> QueueReading:
    try:
        return await read(source)
    finally:
        await source.close()


async def eventually(probe: Callable[[], Awaitable[T]], want: T, within: float = 5.0) -> T:
    """Read until `probe()` gives `want` (brokers count asynchronously); the last value."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value == want or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


async def left_after_close(source: Source, heard: Callable[[], Awaitable[bool]]) -> list[str]:
    """Start a push source's listener, wait until the broker has `heard` it listen, then
    close() the source: the tasks it left behind. The daemon's shutdown needs none."""
    assert isinstance(source, PushSource)
    before = asyncio.all_tasks()
    source.watch()
    assert await eventually(heard, True), "the listener never got to listen"
    await source.close()
    return [repr(task) for task in asyncio.all_tasks() - before]


# -- ports that refuse, or accept and never answer ------------------------------------------


@contextmanager
def black_hole() -> Iterator[int]:
    """A port that completes TCP handshakes (the kernel's backlog) and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


async def timed(body: Awaitable[T]) -> tuple[T | BaseException, float]:
    """(result or the exception raised, seconds taken)."""
    started = time.monotonic()
    try:
        result: T | BaseException = await body
    except BaseException as exc:
        result = exc
    return result, time.monotonic() - started


# -- a Launcher for tests ---------------------------------------------------------------


class PidfdLauncher:
    """The tests' own Launcher (the daemon's is process/children.ReapedLauncher): Popen
    with the same pipes and new session, and the exit learnt from a pidfd, so that no
    SIGCHLD handler is installed in the test process."""

    def __init__(self) -> None:
        self.pids: list[int] = []

    def launch(self, argv: Sequence[str]) -> Launched:
        from workerd.sources.base import SourceError

        loop = asyncio.get_running_loop()
        pipes = [os.pipe2(os.O_CLOEXEC) for _ in range(3)]
        try:
            proc = subprocess.Popen(list(argv), stdin=pipes[0][0], stdout=pipes[1][1], stderr=pipes[2][1],
                                    start_new_session=True, close_fds=True)
        except OSError as exc:
            for r, w in pipes:
                os.close(r)
                os.close(w)
            raise SourceError(f"exec {argv[0]}: {exc.strerror}") from None
        for fd in (pipes[0][0], pipes[1][1], pipes[2][1]):
            os.close(fd)
        stdin, stdout, stderr = pipes[0][1], pipes[1][0], pipes[2][0]
        for fd in (stdin, stdout, stderr):
            os.set_blocking(fd, False)
        self.pids.append(proc.pid)
        exited: asyncio.Future[ExitStatus] = loop.create_future()
        pidfd = os.pidfd_open(proc.pid)

        def on_exit() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            code = proc.wait()
            if not exited.done():
                exited.set_result(ExitStatus(proc.pid, None, -code) if code < 0 else ExitStatus(proc.pid, code, None))

        loop.add_reader(pidfd, on_exit)
        return Launched(proc.pid, stdin, stdout, stderr, exited)


@dataclass
class ReaperHarness:
    """The daemon's own Launcher, with a Reaper installed on the running loop."""

    launcher: Any
    reaper: Any


@contextmanager
def reaper_installed(loop: asyncio.AbstractEventLoop) -> Iterator[ReaperHarness]:
    """Install the daemon's SIGCHLD reaper for the duration (the previous handler is
    put back): it reaps every child of the test process meanwhile."""
    from workerd.process.children import ReapedLauncher
    from workerd.process.reaper import Reaper

    previous = signal.getsignal(signal.SIGCHLD)
    reaper = Reaper(loop)
    reaper.install()
    try:
        yield ReaperHarness(ReapedLauncher(loop, reaper, None), reaper)
    finally:
        signal.signal(signal.SIGCHLD, previous)


def process_gone(pid: int) -> bool:
    """The pid is no process, or only a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return data[data.rfind(")") + 2] in ("Z", "X")


async def until_gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while not process_gone(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


# -- moto in server mode ----------------------------------------------------------------


@dataclass
class Moto:
    endpoint: str
    pid: int


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    """`moto_server` on 127.0.0.1 and a free port, killed by pid afterwards; the
    AWS variables the SQS helper inherits point at fake credentials."""
    binary = Path(sys.executable).with_name("moto_server")
    if not binary.exists():
        missing("moto_server", f"{binary} not found: pip install 'moto[server]'")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    saved = {k: os.environ.get(k) for k in FAKE_AWS}
    os.environ.update(FAKE_AWS)
    try:
        deadline = time.monotonic() + 30
        while not listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                missing("moto_server", f"did not listen on {port}: {log.read_text()[-300:]!r}")
            time.sleep(0.05)
        yield Moto(f"http://127.0.0.1:{port}", proc.pid)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    # No credentials lookup may ever leave the machine (instance metadata).
    "AWS_EC2_METADATA_DISABLED": "true",
}


# -- config ------------------------------------------------------------------------------

AUTOSCALE = '[programs.w]\ncommand = "sleep 1"\n[programs.w.autoscale]\n'
PREFIX = "workers.toml: programs.w.autoscale"


def load_autoscale(directory: Path, body: str) -> AutoscaleConfig:
    """The AutoscaleConfig of `[programs.w.autoscale]` + body, loaded from a file."""
    (directory / "workers.toml").write_text(AUTOSCALE + body)
    config = load(directory / "workers.toml").programs["w"].autoscale
    assert config is not None
    return config


def config_error(directory: Path, body: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The one-line message loading `[programs.w.autoscale]` + body fails with."""
    monkeypatch.chdir(directory)
    (directory / "workers.toml").write_text(AUTOSCALE + body)
    with pytest.raises(ConfigError) as caught:
        load("workers.toml")
    message = str(caught.value)
    assert "\n" not in message
    return message


def without_module(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """Make the config's check of the source clients believe `module` is not installed."""
    from workerd.config import source_rules

    real = source_rules.client_installed
    monkeypatch.setattr(source_rules, "client_installed", lambda name: name != module and real(name))
