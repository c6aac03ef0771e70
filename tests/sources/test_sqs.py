"""The `sqs` source against moto in server mode (a `moto_server` of this module's own on
127.0.0.1 and a free port), through its helper process.

Most tests use the tests' Launcher; one runs the daemon's (spawn.py + the Reaper).
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port
from tests.sources.services import (
    PREFIX,
    Moto,
    PidfdLauncher,
    black_hole,
    config_error,
    eventually,
    load_autoscale,
    moto_server,
    need_client,
    read,
    reaper_installed,
    run,
    timed,
    until_gone,
    without_module,
)
from workerd.config.model import Source as SourceKind
from workerd.core.scaling import QueueReading
from workerd.sources.base import SourceError
from workerd.sources.factory import make_source
from workerd.sources.sqs import SqsSource

boto3 = need_client("boto3", "sqs")

__all__ = ["moto_server"]  # the fixture, imported for pytest
REGION = "us-east-1"


class Queue:
    def __init__(self, moto: Moto) -> None:
        self.moto = moto
        self.client = boto3.client("sqs", region_name=REGION, endpoint_url=moto.endpoint)
        self.url: str = self.client.create_queue(QueueName=f"wdtest-{uuid.uuid4().hex[:8]}")["QueueUrl"]

    def push(self, n: int) -> None:
        for i in range(n):
            self.client.send_message(QueueUrl=self.url, MessageBody=f"job {i}")

    def take(self, n: int) -> None:
        """Receive n messages and keep them in flight (invisible for a minute)."""
        taken = 0
        while taken < n:
            got = self.client.receive_message(QueueUrl=self.url, MaxNumberOfMessages=n - taken,
                                              VisibilityTimeout=60)
            taken += len(got.get("Messages", []))

    def source(self, launcher: Any, include_in_flight: bool = False, timeout: float = 5,
               url: str | None = None, endpoint: str | None = None) -> SqsSource:
        return SqsSource(url or self.url, REGION, endpoint or self.moto.endpoint, include_in_flight, timeout, launcher)

    def delete(self) -> None:
        self.client.delete_queue(QueueUrl=self.url)


@pytest.fixture
def queue(moto_server: Moto) -> Any:
    q = Queue(moto_server)
    yield q
    q.delete()


def test_an_empty_queue_reads_0_and_n_jobs_read_n(queue: Queue) -> None:
    async def body() -> list[QueueReading]:
        source = queue.source(PidfdLauncher())
        readings = [await read(source)]
        queue.push(4)
        readings.append(await read(source))
        queue.push(2)
        readings.append(await read(source))
        await source.close()
        return readings

    assert run(body()) == [QueueReading(0), QueueReading(4), QueueReading(6)]


def test_in_flight_messages_count_only_with_include_in_flight(queue: Queue) -> None:
    queue.push(5)
    queue.take(2)

    async def body() -> tuple[QueueReading, QueueReading]:
        launcher = PidfdLauncher()
        visible, everything = queue.source(launcher), queue.source(launcher, include_in_flight=True)
        try:
            return await read(visible), await read(everything)
        finally:
            await visible.close()
            await everything.close()

    assert run(body()) == (QueueReading(3), QueueReading(5))


def test_one_helper_serves_every_reading_and_goes_with_close(queue: Queue) -> None:
    async def body() -> tuple[list[int], bool]:
        launcher = PidfdLauncher()
        source = queue.source(launcher)
        for _ in range(3):
            await read(source)
        await source.close()
        return launcher.pids, await until_gone(launcher.pids[0])

    pids, gone = run(body())
    assert len(pids) == 1
    assert gone


def test_a_missing_queue_is_an_error_and_the_helper_stays(queue: Queue) -> None:
    async def body() -> tuple[Any, Any, list[int]]:
        launcher = PidfdLauncher()
        source = queue.source(launcher, url=queue.url + "-missing")
        first, _ = await timed(read(source))
        second, _ = await timed(read(source))
        await source.close()
        return first, second, launcher.pids

    first, second, pids = run(body())
    for failed in (first, second):
        assert isinstance(failed, SourceError)
        assert str(failed).startswith(f"sqs {queue.url}-missing: ")
        assert "NonExistentQueue" in str(failed) or "does not exist" in str(failed)
    assert len(pids) == 1


def test_a_helper_that_dies_is_an_error_then_it_is_started_again(queue: Queue) -> None:
    async def body() -> tuple[Any, QueueReading, list[int]]:
        launcher = PidfdLauncher()
        source = queue.source(launcher)
        await read(source)
        os.kill(launcher.pids[0], signal.SIGKILL)
        failed, _ = await timed(read(source))
        queue.push(1)
        again = await read(source)
        await source.close()
        return failed, again, launcher.pids

    failed, again, pids = run(body())
    assert isinstance(failed, SourceError)
    assert str(failed) == f"sqs {queue.url}: the helper ended (killed by SIGKILL)"
    assert again == QueueReading(1)
    assert len(pids) == 2


def test_a_helper_that_cannot_start_says_why(queue: Queue, tmp_path: Path) -> None:
    """A broken helper (here: a Python without boto3) is an error quoting its stderr."""

    async def body() -> Any:
        source = queue.source(PidfdLauncher())
        source._argv = ["/usr/bin/env", "-i", "python3", "-c", "import no_such_module_boto"]
        result, _ = await timed(read(source))
        await source.close()
        return result

    result = run(body())
    assert isinstance(result, SourceError)
    assert str(result).startswith(f"sqs {queue.url}: the helper ended (exit status 1): ")
    assert "No module named 'no_such_module_boto'" in str(result)


def test_a_cancelled_reading_keeps_the_request_and_the_helper(queue: Queue) -> None:
    """The autoscaler's timeout hit while the helper was still starting: the next reading
    waits for that same helper and gets the answer it owes."""

    async def body() -> tuple[list[int], QueueReading]:
        launcher = PidfdLauncher()
        source = queue.source(launcher)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(source.read(), 0.01)
        queue.push(3)

        async def depth() -> int:
            return (await read(source)).depth

        await eventually(depth, 3)
        reading = await read(source)
        await source.close()
        return launcher.pids, reading

    pids, reading = run(body())
    assert len(pids) == 1
    assert reading == QueueReading(3)


def test_an_endpoint_that_refuses_is_an_error(queue: Queue) -> None:
    async def body() -> tuple[Any, float]:
        source = queue.source(PidfdLauncher(), endpoint=f"http://127.0.0.1:{free_port()}", timeout=2)
        try:
            return await timed(read(source))
        finally:
            await source.close()

    result, took = run(body())
    assert isinstance(result, SourceError)
    assert "Could not connect to the endpoint URL" in str(result)
    assert took < 5


def test_an_endpoint_that_never_answers_is_an_error_after_the_timeout(queue: Queue) -> None:
    async def body(port: int) -> tuple[Any, Any]:
        source = queue.source(PidfdLauncher(), endpoint=f"http://127.0.0.1:{port}", timeout=1)
        try:
            return await timed(read(source))
        finally:
            await source.close()

    with black_hole() as port:
        result, took = run(body(port))
    assert isinstance(result, SourceError)
    assert str(result).startswith(f"sqs {queue.url}: ")
    assert took < 5


def test_through_the_daemons_launcher(queue: Queue, tmp_path: Path) -> None:
    config = load_autoscale(tmp_path, f'source = "sqs"\nqueue_url = "{queue.url}"\nregion = "{REGION}"\n'
                                      f'endpoint_url = "{queue.moto.endpoint}"\n')
    queue.push(2)

    async def body() -> tuple[QueueReading, int]:
        with reaper_installed(asyncio.get_running_loop()) as harness:
            source = make_source(config, harness.launcher)
            reading = await read(source)
            await source.close()
            deadline = asyncio.get_running_loop().time() + 5
            while harness.reaper.watched and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)
            return reading, int(harness.reaper.watched)

    assert run(body()) == (QueueReading(2), 0)


# -- config --------------------------------------------------------------------------------

SQS = 'source = "sqs"\nqueue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs"\nregion = "eu-west-1"\n'


def test_config(tmp_path: Path) -> None:
    config = load_autoscale(tmp_path, SQS)
    assert config.source is SourceKind.SQS
    assert (config.queue_url, config.region) == ("https://sqs.eu-west-1.amazonaws.com/123456789012/jobs", "eu-west-1")
    assert (config.endpoint_url, config.include_in_flight) == (None, False)
    config = load_autoscale(tmp_path, SQS + 'endpoint_url = "http://127.0.0.1:5000"\ninclude_in_flight = true\n')
    assert (config.endpoint_url, config.include_in_flight) == ("http://127.0.0.1:5000", True)


@pytest.mark.parametrize(("body", "message"), [
    ('source = "sqs"\nregion = "eu-west-1"\n', f"{PREFIX}.source: source 'sqs' needs queue_url"),
    ('source = "sqs"\nqueue_url = "https://q"\n', f"{PREFIX}.source: source 'sqs' needs region"),
    ('source = "sqs"\nqueue_url = "jobs"\nregion = "eu-west-1"\n',
     f"{PREFIX}.queue_url: expected a URL starting with https:// or http://, got 'jobs'"),
    (SQS + 'endpoint_url = "localhost:5000"\n',
     f"{PREFIX}.endpoint_url: expected a URL starting with https:// or http://, got 'localhost:5000'"),
    ('source = "sqs"\nqueue_url = "https://q"\nregion = " "\n', f"{PREFIX}.region: must not be empty"),
    (SQS + 'include_in_flight = "yes"\n', f'{PREFIX}.include_in_flight: expected true or false, got "yes"'),
    (SQS + 'url = "http://x"\n', f"{PREFIX}.url: not used by source 'sqs'"),
    ('source = "redis"\nkeys = ["q"]\ninclude_in_flight = true\n',
     f"{PREFIX}.include_in_flight: not used by source 'redis'"),
])
def test_config_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, message: str) -> None:
    assert config_error(tmp_path, body, monkeypatch) == message


def test_config_without_the_client_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    without_module(monkeypatch, "boto3")
    assert (config_error(tmp_path, SQS, monkeypatch)
            == f"{PREFIX}.source: the sqs client is not installed: pip install 'workerd[sqs]'")


def test_the_daemon_side_imports_no_client_library() -> None:
    """boto3 lives in the helper only; the daemon (and the sources it imports for the
    sqs and command kinds) loads none of the optional clients."""
    import subprocess
    import sys

    code = ("import sys, workerd.daemon, workerd.sources.factory, workerd.sources.sqs, "
            "workerd.sources.command, workerd.sources.http; "
            "print(sorted(m for m in ('boto3', 'botocore', 'psycopg', 'aiormq', 'nats', 'redis') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert result.stdout.strip() == "[]"
