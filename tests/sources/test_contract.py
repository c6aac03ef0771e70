"""The contract every queue source keeps, run over each backend against the real thing:
the sqlite source on a temporary file, the redis source on the Redis at 127.0.0.1:6379
(under a random key prefix, deleted afterwards).

- an empty queue reads 0, N jobs read N, the same source reads again and again;
- an answer that is not a depth (text, a negative number, a key of the wrong type) is a
  SourceError whose message names the source and says what was wrong;
- a service that cannot be reached is a SourceError, quickly (no hang), and `close()`
  after it is fine.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from workerd.core.scaling import QueueReading
from workerd.sources.base import Source, SourceError

T = TypeVar("T")
#: Longest any one read may take in these tests (a hang fails instead of blocking the run).
READ_LIMIT = 5.0


def run(body: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(body())  # type: ignore[arg-type]


async def read(source: Source) -> QueueReading:
    return await asyncio.wait_for(source.read(), READ_LIMIT)


class SqliteBackend:
    name = "sqlite"

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "queue.db"
        with sqlite3.connect(self.path) as db:
            db.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, payload TEXT)")
        db.close()

    def source(self) -> Source:
        from workerd.sources.sqlite import SqliteSource

        return SqliteSource(self.path, "SELECT count(*) FROM jobs")

    def push(self, n: int) -> None:
        db = sqlite3.connect(self.path)
        with db:
            db.executemany("INSERT INTO jobs (payload) VALUES (?)", [(f"job {i}",) for i in range(n)])
        db.close()

    def garbage(self) -> list[tuple[Source, str]]:
        from workerd.sources.sqlite import SqliteSource

        return [
            (SqliteSource(self.path, "SELECT 'lots'"), "not a number: 'lots'"),
            (SqliteSource(self.path, "SELECT -3"), "negative depth -3"),
            (SqliteSource(self.path, "SELECT NULL"), "not a number: None"),
        ]

    def unreachable(self) -> Source:
        from workerd.sources.sqlite import SqliteSource

        return SqliteSource(self.path.with_name("missing.db"), "SELECT count(*) FROM jobs")


class RedisBackend:
    name = "redis"

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self.url = url
        self.key = f"{prefix}jobs"
        self.prefix = prefix
        self.client = redis.Redis.from_url(url)

    def source(self) -> Source:
        from workerd.sources.redis import RedisSource

        return RedisSource(self.url, (self.key,), None, None, 1.0)

    def push(self, n: int) -> None:
        self.client.rpush(self.key, *[f"job {i}" for i in range(n)])

    def garbage(self) -> list[tuple[Source, str]]:
        from workerd.sources.redis import RedisSource

        self.client.hset(f"{self.prefix}hash", mapping={"a": 1})
        self.client.set(f"{self.prefix}string", "12")
        self.client.sadd(f"{self.prefix}set", "a", "b")
        return [
            (RedisSource(self.url, (f"{self.prefix}hash",), None, None, 1.0), "is a hash"),
            (RedisSource(self.url, (f"{self.prefix}string",), None, None, 1.0), "is a string"),
            (RedisSource(self.url, (f"{self.prefix}set",), None, None, 1.0), "is a set"),
        ]

    def unreachable(self) -> Source:
        from workerd.sources.redis import RedisSource

        return RedisSource("redis://127.0.0.1:1/0", (self.key,), None, None, 1.0)

    def close(self) -> None:
        self.client.close()


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        yield SqliteBackend(tmp_path)
        return
    url = request.getfixturevalue("redis_url")
    b = RedisBackend(url, request.getfixturevalue("redis_prefix"))
    yield b
    b.close()


def test_an_empty_queue_reads_zero(backend: Any) -> None:
    async def body() -> QueueReading:
        source = backend.source()
        try:
            return await read(source)
        finally:
            await source.close()

    reading = run(body)
    assert reading.depth == 0


def test_n_jobs_read_n_and_the_source_reads_again(backend: Any) -> None:
    async def body() -> list[int]:
        source = backend.source()
        depths = []
        try:
            backend.push(7)
            depths.append((await read(source)).depth)
            backend.push(5)
            depths.append((await read(source)).depth)
            depths.append((await read(source)).depth)
        finally:
            await source.close()
        return depths

    assert run(body) == [7, 12, 12]


def test_a_depth_is_a_non_negative_int(backend: Any) -> None:
    backend.push(3)

    async def body() -> QueueReading:
        source = backend.source()
        try:
            return await read(source)
        finally:
            await source.close()

    reading = run(body)
    assert type(reading.depth) is int and reading.depth == 3
    assert reading.age is None or reading.age >= 0


def test_garbage_is_a_source_error_with_a_clear_message(backend: Any) -> None:
    async def body() -> list[str]:
        messages = []
        for source, _ in cases:
            try:
                with pytest.raises(SourceError) as caught:
                    await read(source)
            finally:
                await source.close()
            messages.append(str(caught.value))
        return messages

    cases = backend.garbage()
    for message, (_, expected) in zip(run(body), cases, strict=True):
        assert expected in message, message
        assert backend.name in message, message
        assert "\n" not in message and "Traceback" not in message


def test_an_unreachable_service_is_a_source_error_quickly(backend: Any) -> None:
    async def body() -> tuple[str, float]:
        source = backend.unreachable()
        started = time.monotonic()
        try:
            with pytest.raises(SourceError) as caught:
                await read(source)
            took = time.monotonic() - started
            # and again: a failed source can be read (and fail) again, then closed
            with pytest.raises(SourceError):
                await read(source)
        finally:
            await source.close()
        await source.close()  # closing twice is harmless
        return str(caught.value), took

    message, took = run(body)
    assert took < 2.0, f"an unreachable {backend.name} took {took:.2f}s to fail"
    assert message.startswith(backend.name), message
    assert "\n" not in message
