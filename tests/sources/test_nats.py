"""The `nats` source against the NATS server with JetStream at 127.0.0.1:4222, on a
stream and durable pull consumer of the test's own (random names), deleted afterwards."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.helpers import free_port
from tests.sources.services import (
    NATS_URL,
    PREFIX,
    black_hole,
    config_error,
    left_after_close,
    load_autoscale,
    missing,
    need_client,
    need_port,
    read,
    read_closing,
    run,
    timed,
    without_module,
)
from workerd.config.model import Source as SourceKind
from workerd.core.scaling import QueueReading
from workerd.sources.base import SourceError

nats = need_client("nats", "nats")

from workerd.sources.nats import NatsSource  # noqa: E402  (needs nats-py)

T = TypeVar("T")


@pytest.fixture(scope="module")
def nats_url() -> str:
    need_port("NATS", 4222)
    return NATS_URL


class Stream:
    """A stream `wdtest-<hex>` on subject `wdtest.<hex>.jobs`, with the durable pull
    consumer `workers`."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.name = f"wdtest-{tag}"
        self.subject = f"wdtest.{tag}.jobs"
        self.consumer = "workers"
        self.client: Any = None
        self.js: Any = None

    async def open(self) -> None:
        self.client = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
        self.js = self.client.jetstream(timeout=5)
        try:
            await self.js.add_stream(name=self.name, subjects=[self.subject])
        except nats.js.errors.ServiceUnavailableError as exc:
            missing(f"NATS JetStream at {NATS_URL}", f"JetStream is not enabled, start nats-server with -js: {exc}")
        await self.js.add_consumer(self.name, durable_name=self.consumer, ack_policy="explicit")

    async def push(self, n: int) -> None:
        for i in range(n):
            await self.js.publish(self.subject, f"job {i}".encode())

    def source(self, consumer: str | None = None, stream: str | None = None, timeout: float = 5) -> NatsSource:
        return NatsSource(NATS_URL, stream or self.name, consumer or self.consumer, timeout)

    async def close(self) -> None:
        try:
            await self.js.delete_stream(self.name)
        finally:
            await self.client.close()


def with_stream(body: Callable[[Stream], Awaitable[T]]) -> T:
    async def main() -> T:
        stream = Stream()
        await stream.open()
        try:
            return await body(stream)
        finally:
            await stream.close()

    return run(main())


def test_close_ends_the_subject_listener(nats_url: str) -> None:
    async def body(stream: Stream) -> list[str]:
        source = stream.source()

        async def heard() -> bool:
            await stream.push(1)
            return source.pushed.is_set()

        return await left_after_close(source, heard)

    assert with_stream(body) == []


def test_an_empty_stream_reads_0(nats_url: str) -> None:
    async def body(stream: Stream) -> QueueReading:
        return await read_closing(stream.source())

    assert with_stream(body) == QueueReading(0)


def test_n_jobs_read_n_again_and_again(nats_url: str) -> None:
    async def body(stream: Stream) -> list[QueueReading]:
        source = stream.source()
        readings = [await read(source)]
        await stream.push(5)
        readings.append(await read(source))
        await stream.push(2)
        readings.append(await read(source))
        await source.close()
        return readings

    assert with_stream(body) == [QueueReading(0), QueueReading(5), QueueReading(7)]


def test_messages_delivered_and_not_acked_are_not_counted(nats_url: str) -> None:
    """num_pending only: a fetched message awaiting its ack is a worker's, not backlog."""

    async def body(stream: Stream) -> tuple[QueueReading, QueueReading]:
        await stream.push(6)
        subscription = await stream.js.pull_subscribe(stream.subject, durable=stream.consumer, stream=stream.name)
        fetched = await subscription.fetch(2, timeout=5)
        source = stream.source()
        in_flight = await read(source)
        for message in fetched:
            await message.ack()
        after_ack = await read(source)
        await source.close()
        return in_flight, after_ack

    assert with_stream(body) == (QueueReading(4), QueueReading(4))


def test_the_connection_is_kept_between_readings(nats_url: str) -> None:
    async def body(stream: Stream) -> bool:
        source = stream.source()
        await read(source)
        client = source._client
        await read(source)
        same = source._client is client
        await source.close()
        return same

    assert with_stream(body)


@pytest.mark.parametrize("which", ["consumer", "stream"])
def test_a_missing_consumer_or_stream_is_an_error_not_0(nats_url: str, which: str) -> None:
    async def body(stream: Stream) -> tuple[Any, QueueReading]:
        source = stream.source(consumer="nosuch") if which == "consumer" else stream.source(stream="nosuch")
        failed, _ = await timed(read(source))
        source._consumer, source._stream = stream.consumer, stream.name
        try:
            return failed, await read(source)
        finally:
            await source.close()

    failed, reading = with_stream(body)
    assert isinstance(failed, SourceError)
    assert str(failed).startswith(f"nats {NATS_URL} consumer ")
    assert f"not found ({which} not found)" in str(failed)
    assert reading == QueueReading(0)


def test_a_refused_port_is_an_error_at_once() -> None:
    source = NatsSource(f"nats://127.0.0.1:{free_port()}", "s", "c", 2)
    result, took = run(timed(read_closing(source)))
    assert isinstance(result, SourceError)
    assert str(result).startswith("nats nats://127.0.0.1:")
    assert took < 2


def test_a_server_that_never_answers_is_an_error_after_the_timeout() -> None:
    with black_hole() as port:
        source = NatsSource(f"nats://127.0.0.1:{port}", "s", "c", 1.0)
        result, took = run(timed(read_closing(source)))
    assert isinstance(result, SourceError)
    assert str(result).startswith(f"nats nats://127.0.0.1:{port} consumer s/c: ")
    assert took < 3


def test_a_reading_cancelled_midway_leaves_a_working_source(nats_url: str) -> None:
    async def body(stream: Stream) -> QueueReading:
        source = stream.source()
        with black_hole() as port:
            source._url = f"nats://127.0.0.1:{port}"
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(source.read(), 0.3)
        source._url = NATS_URL
        await stream.push(1)
        try:
            return await read(source)
        finally:
            await source.close()

    assert with_stream(body) == QueueReading(1)


def test_a_restarted_connection_after_the_server_closed_it(nats_url: str) -> None:
    async def body(stream: Stream) -> QueueReading:
        source = stream.source()
        await read(source)
        assert source._client is not None
        await source._client.close()
        await stream.push(3)
        try:
            return await read(source)
        finally:
            await source.close()

    assert with_stream(body) == QueueReading(3)


# -- config --------------------------------------------------------------------------------


def test_config(tmp_path: Path) -> None:
    config = load_autoscale(tmp_path, 'source = "nats"\nurl = "nats://127.0.0.1:4222"\nstream = "JOBS"\n'
                                      'consumer = "workers"\n')
    assert config.source is SourceKind.NATS
    assert (config.url, config.stream, config.consumer) == ("nats://127.0.0.1:4222", "JOBS", "workers")


@pytest.mark.parametrize(("body", "message"), [
    ('source = "nats"\nstream = "s"\nconsumer = "c"\n', f"{PREFIX}.source: source 'nats' needs url"),
    ('source = "nats"\nurl = "nats://h"\nconsumer = "c"\n', f"{PREFIX}.source: source 'nats' needs stream"),
    ('source = "nats"\nurl = "nats://h"\nstream = "s"\n', f"{PREFIX}.source: source 'nats' needs consumer"),
    ('source = "nats"\nurl = "h:4222"\nstream = "s"\nconsumer = "c"\n',
     f"{PREFIX}.url: expected a URL starting with nats:// or tls:// or ws:// or wss://, got 'h:4222'"),
    ('source = "nats"\nurl = "nats://h"\nstream = "a.b"\nconsumer = "c"\n',
     f"{PREFIX}.stream: invalid JetStream name 'a.b' (no spaces, '.', '*', '>', '/' or '\\')"),
    ('source = "nats"\nurl = "nats://h"\nstream = "s"\nconsumer = "my consumer"\n',
     f"{PREFIX}.consumer: invalid JetStream name 'my consumer' (no spaces, '.', '*', '>', '/' or '\\')"),
    ('source = "nats"\nurl = "nats://h"\nstream = "s"\nconsumer = "c"\nqueues = ["q"]\n',
     f"{PREFIX}.queues: not used by source 'nats'"),
])
def test_config_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, message: str) -> None:
    assert config_error(tmp_path, body, monkeypatch) == message


def test_config_without_the_client_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    without_module(monkeypatch, "nats")
    body = 'source = "nats"\nurl = "nats://h"\nstream = "s"\nconsumer = "c"\n'
    assert (config_error(tmp_path, body, monkeypatch)
            == f"{PREFIX}.source: the nats client is not installed: pip install 'workerd[nats]'")
