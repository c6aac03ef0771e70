"""Depth from Redis keys: lists (LLEN), streams (consumer-group lag), sorted sets.

`keys` are summed; `format` + `queue` derive the keys from the layout of a job
library (sources/layouts.py); with arq only jobs due now count (score <= now in ms)
and the oldest score gives the age.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from workerd.config.model import RedisFormat
from workerd.core.scaling import QueueReading
from workerd.sources.base import SourceError, redact
from workerd.sources.layouts import library_keys

DEFAULT_URL = "redis://127.0.0.1:6379/0"


class RedisSource:
    def __init__(self, url: str | None, keys: tuple[str, ...] | None, library: RedisFormat | None,
                 queue: str | None, timeout: float) -> None:
        self._url = url or DEFAULT_URL
        #: The URL without its password, for messages.
        self._shown = redact(self._url)
        self._keys = list(keys) if keys else library_keys(library, queue or "") if library else []
        self._due_only = library is RedisFormat.ARQ
        self._timeout = timeout
        self._client = aioredis.from_url(
            self._url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=False
        )
        self.pushed = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None

    def watch(self) -> None:
        if self._listener is None and self._keys:
            self._listener = asyncio.ensure_future(self._listen())

    async def _listen(self) -> None:
        """Set `pushed` at every keyspace event of the watched keys. The server must
        publish them (`notify-keyspace-events` with K and l, z or t, or KA); workerd
        never changes a server's config, so without them this stays silent and the
        interval alone reads the queue. Errors are retried quietly after a timeout."""
        client = aioredis.from_url(self._url, socket_connect_timeout=self._timeout, socket_keepalive=True)
        db = client.connection_pool.connection_kwargs.get("db", 0)
        channels = [f"__keyspace@{db}__:{key}" for key in self._keys]
        try:
            while True:
                try:
                    async with client.pubsub() as pubsub:
                        await pubsub.subscribe(*channels)
                        async for message in pubsub.listen():
                            if message.get("type") == "message":
                                self.pushed.set()
                except (RedisError, OSError):
                    await asyncio.sleep(self._timeout)
        finally:
            await client.aclose()

    async def read(self) -> QueueReading:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key in self._keys:
                    pipe.type(key)
                types = await pipe.execute()
            depth, ages = 0, []
            for key, kind in zip(self._keys, types, strict=True):
                size, age = await self._size(key, kind.decode() if isinstance(kind, bytes) else str(kind))
                depth += size
                if age is not None:
                    ages.append(age)
        except (RedisError, OSError) as exc:
            raise SourceError(f"redis {self._shown}: {exc}") from None
        except (AttributeError, TypeError, ValueError, IndexError, KeyError) as exc:
            # What the client raises when the server's answer is not Redis's (redis-py 8
            # on a garbage HELLO reply): not our bug, a broker that speaks garbage.
            raise SourceError(f"redis {self._shown}: not a Redis answer ({type(exc).__name__}: {exc})") from None
        return QueueReading(depth, max(ages) if ages else None)

    async def _size(self, key: str, kind: str) -> tuple[int, float | None]:
        if kind == "none":
            return 0, None
        if kind == "list":
            return int(await self._client.llen(key)), None
        if kind == "zset":
            if not self._due_only:
                return int(await self._client.zcard(key)), None
            now_ms = time.time() * 1000
            due = int(await self._client.zcount(key, "-inf", now_ms))
            oldest = await self._client.zrange(key, 0, 0, withscores=True)
            age = (now_ms - float(oldest[0][1])) / 1000 if due and oldest else None
            return due, max(age, 0.0) if age is not None else None
        if kind == "stream":
            return await self._stream(key)
        raise SourceError(f"redis key {key!r} is a {kind}, not a list, stream or sorted set")

    async def _stream(self, key: str) -> tuple[int, float | None]:
        """Lag of the slowest consumer group (XLEN without a group), and the age of the
        oldest entry it has not been given yet (stream ids are milliseconds)."""
        groups: list[dict[Any, Any]] = await self._client.xinfo_groups(key)
        length: int | None = None
        if not groups:
            length = int(await self._client.xlen(key))
            first = await self._client.xrange(key, count=1) if length else []
            return length, _age(_as_bytes(first[0][0])) if first else None
        lags = []
        for group in groups:
            lag = group.get(b"lag", group.get("lag"))
            if lag is None:  # Redis cannot tell (entries were deleted): over-count, never under
                length = int(await self._client.xlen(key)) if length is None else length
                lag = length
            lags.append(int(lag))
        lag, slowest = max(zip(lags, groups, strict=True), key=lambda pair: pair[0])
        last = slowest.get(b"last-delivered-id", slowest.get("last-delivered-id"))
        nxt = await self._client.xrange(key, min=b"(" + _as_bytes(last), count=1) if last and lag else []
        return int(lag), _age(_as_bytes(nxt[0][0])) if nxt else None

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            try:
                await self._listener
            except (asyncio.CancelledError, RedisError, OSError):
                pass
            self._listener = None
        await self._client.aclose()


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _age(entry_id: bytes) -> float:
    millis = int(entry_id.split(b"-")[0])
    return max(time.time() - millis / 1000, 0.0)
