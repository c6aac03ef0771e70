"""The `rabbitmq` source against the RabbitMQ at 127.0.0.1:5672 (guest/guest), on queues
of the test's own (random names), deleted afterwards."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.helpers import free_port
from tests.sources.services import (
    PREFIX,
    RABBITMQ_URL,
    black_hole,
    config_error,
    eventually,
    load_autoscale,
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

aiormq = need_client("aiormq", "rabbitmq")

from workerd.sources.rabbitmq import RabbitmqSource  # noqa: E402  (needs aiormq)

T = TypeVar("T")

@pytest.fixture(scope="module")
def rabbitmq() -> str:
    need_port("RabbitMQ", 5672)
    return RABBITMQ_URL

class Broker:
    """A connection of the test's own that declares, fills and deletes queues."""

    def __init__(self) -> None:
        self.queues: list[str] = []
        self.conn: Any = None
        self.channel: Any = None

    async def open(self) -> None:
        self.conn = aiormq.Connection(RABBITMQ_URL)
        await self.conn.connect()
        self.channel = await self.conn.channel()

    async def queue(self) -> str:
        name = f"wd-test-{uuid.uuid4().hex[:8]}"
        await self.channel.queue_declare(name, auto_delete=False)
        self.queues.append(name)
        return name

    async def push(self, queue: str, n: int) -> None:
        for i in range(n):
            await self.channel.basic_publish(f"job {i}".encode(), routing_key=queue)

    async def close(self) -> None:
        for name in self.queues:
            await self.channel.queue_delete(name)
        await self.conn.close()

def with_broker(body: Callable[[Broker], Awaitable[T]]) -> T:
    async def main() -> T:
        broker = Broker()
        await broker.open()
        try:
            return await body(broker)
        finally:
            await broker.close()

    return run(main())

def test_an_empty_queue_reads_0(rabbitmq: str) -> None:
    async def body(broker: Broker) -> QueueReading:
        return await read_closing(RabbitmqSource(rabbitmq, (await broker.queue(),), 5))

    assert with_broker(body) == QueueReading(0)

def test_n_jobs_read_n_and_queues_are_summed(rabbitmq: str) -> None:
    async def body(broker: Broker) -> list[int]:
        first, second = await broker.queue(), await broker.queue()
        source = RabbitmqSource(rabbitmq, (first, second), 5)

        async def depth() -> int:
            return (await read(source)).depth

        depths = [await depth()]
        await broker.push(first, 5)
        depths.append(await eventually(depth, 5))
        await broker.push(second, 3)
        depths.append(await eventually(depth, 8))
        await source.close()
        return depths

    assert with_broker(body) == [0, 5, 8]

def test_messages_being_worked_on_are_not_counted(rabbitmq: str) -> None:
    """"Messages ready": a delivered, unacknowledged message is a worker's, not backlog."""

    async def body(broker: Broker) -> int:
        queue = await broker.queue()
        await broker.push(queue, 4)
        source = RabbitmqSource(rabbitmq, (queue,), 5)

        async def depth() -> int:
            return (await read(source)).depth

        await eventually(depth, 4)
        got = await broker.channel.basic_get(queue, no_ack=False)  # taken, not acked
        assert got.body == b"job 0"
        try:
            return await eventually(depth, 3)
        finally:
            await source.close()

    assert with_broker(body) == 3

def test_the_connection_is_kept_between_readings(rabbitmq: str) -> None:
    async def body(broker: Broker) -> bool:
        source = RabbitmqSource(rabbitmq, (await broker.queue(),), 5)
        await read(source)
        conn = source._conn
        await read(source)
        same = source._conn is conn
        await source.close()
        return same

    assert with_broker(body)

def test_a_missing_queue_is_an_error_not_0(rabbitmq: str) -> None:
    async def body(broker: Broker) -> tuple[Any, QueueReading]:
        present = await broker.queue()
        missing = f"wd-test-missing-{uuid.uuid4().hex[:8]}"
        source = RabbitmqSource(rabbitmq, (present, missing), 5)
        failed, _ = await timed(read(source))
        # The broker closed the channel; the next reading opens another one.
        source._queues = (present,)
        try:
            return failed, await read(source)
        finally:
            await source.close()

    failed, reading = with_broker(body)
    assert isinstance(failed, SourceError)
    assert str(failed).startswith("rabbitmq amqp://guest:***@127.0.0.1:5672/: no queue 'wd-test-missing-")
    assert reading == QueueReading(0)

def test_wrong_credentials_are_an_error(rabbitmq: str) -> None:
    source = RabbitmqSource("amqp://guest:wrong@127.0.0.1:5672/", ("q",), 5)
    result, took = run(timed(read_closing(source)))
    assert isinstance(result, SourceError)
    assert str(result).startswith("rabbitmq amqp://guest:***@127.0.0.1:5672/: ")
    assert "wrong" not in str(result)
    assert took < 5

def test_a_refused_port_is_an_error_at_once() -> None:
    source = RabbitmqSource(f"amqp://guest:guest@127.0.0.1:{free_port()}/", ("q",), 2)
    result, took = run(timed(read_closing(source)))
    assert isinstance(result, SourceError)
    assert "Connect call failed" in str(result) or "refused" in str(result).lower()
    assert took < 2

def test_a_broker_that_never_answers_is_an_error_after_the_timeout() -> None:
    with black_hole() as port:
        source = RabbitmqSource(f"amqp://guest:guest@127.0.0.1:{port}/", ("q",), 1.0)
        result, took = run(timed(read_closing(source)))
    assert isinstance(result, SourceError)
    assert str(result) == f"rabbitmq amqp://guest:***@127.0.0.1:{port}/: TimeoutError"
    assert 0.9 < took < 3

def test_a_reading_cancelled_midway_leaves_a_working_source(rabbitmq: str) -> None:
    async def body(broker: Broker) -> QueueReading:
        queue = await broker.queue()
        source = RabbitmqSource(rabbitmq, (queue,), 5)
        with black_hole() as port:
            source._url = f"amqp://guest:guest@127.0.0.1:{port}/"
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(source.read(), 0.3)
        source._url = rabbitmq
        try:
            return await read(source)
        finally:
            await source.close()

    assert with_broker(body) == QueueReading(0)

# -- config --------------------------------------------------------------------------------

def test_config(tmp_path: Path) -> None:
    config = load_autoscale(tmp_path, 'source = "rabbitmq"\nurl = "amqp://u:p@mq:5672/vhost"\n'
                                      'queues = ["email", "sms"]\n')
    assert config.source is SourceKind.RABBITMQ
    assert (config.url, config.queues) == ("amqp://u:p@mq:5672/vhost", ("email", "sms"))

@pytest.mark.parametrize(("body", "message"), [
    ('source = "rabbitmq"\nqueues = ["q"]\n', f"{PREFIX}.source: source 'rabbitmq' needs url"),
    ('source = "rabbitmq"\nurl = "amqp://h"\n', f"{PREFIX}.source: source 'rabbitmq' needs queues"),
    ('source = "rabbitmq"\nurl = "http://h"\nqueues = ["q"]\n',
     f"{PREFIX}.url: expected a URL starting with amqp:// or amqps://, got 'http://h'"),
    ('source = "rabbitmq"\nurl = "amqp://h"\nqueues = "q"\n',
     f'{PREFIX}.queues: expected a non-empty array of strings, got "q"'),
    ('source = "rabbitmq"\nurl = "amqp://h"\nqueues = []\n',
     f"{PREFIX}.queues: expected a non-empty array of strings, got an array"),
    ('source = "rabbitmq"\nurl = "amqp://h"\nqueues = [""]\n', f"{PREFIX}.queues: must not be empty"),
    ('source = "rabbitmq"\nurl = "amqp://h"\nqueues = ["q"]\nquery = "x"\n',
     f"{PREFIX}.query: not used by source 'rabbitmq'"),
    ('source = "sqlite"\npath = "q.db"\nquery = "SELECT 1"\nqueues = ["q"]\n',
     f"{PREFIX}.queues: not used by source 'sqlite'"),
])
def test_config_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, message: str) -> None:
    assert config_error(tmp_path, body, monkeypatch) == message

def test_config_without_the_client_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    without_module(monkeypatch, "aiormq")
    body = 'source = "rabbitmq"\nurl = "amqp://h"\nqueues = ["q"]\n'
    assert (config_error(tmp_path, body, monkeypatch)
            == f"{PREFIX}.source: the rabbitmq client is not installed: pip install 'workerd[rabbitmq]'")
