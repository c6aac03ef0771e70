"""Depth from RabbitMQ over AMQP 0-9-1 (aiormq): the messages ready in `queues`, summed.

A passive queue.declare answers with the queue's ready count (messages not yet
delivered to a consumer; the unacknowledged ones are already being worked on), needs
no management plugin and never creates a queue. A queue that does not exist is an
error, not a depth of 0: a typo would otherwise scale a program to `min` forever.

One connection is kept; the broker closes the channel after a failed declare (404),
so the channel is opened again, and after any other error the connection too.
"""

from __future__ import annotations

import asyncio
import logging

import aiormq
from aiormq.abc import AbstractChannel
from aiormq.exceptions import AMQPError, ChannelNotFoundEntity

from workerd.core.scaling import QueueReading
from workerd.sources.base import SourceError, check_depth, one_line, redact

# aiormq logs every failed connect at ERROR; the failure is already the reading's
# error (status, metrics), and a broker that is down would log one per interval.
logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)


class RabbitmqSource:
    def __init__(self, url: str, queues: tuple[str, ...], timeout: float) -> None:
        self._url = url
        self._queues = queues
        self._timeout = timeout
        self._what = f"rabbitmq {redact(url)}"
        self._conn: aiormq.Connection | None = None
        self._channel: AbstractChannel | None = None

    async def read(self) -> QueueReading:
        depth = 0
        try:
            for queue in self._queues:
                channel = await self._open_channel()
                try:
                    ok = await channel.queue_declare(queue, passive=True, timeout=self._timeout)
                except ChannelNotFoundEntity:
                    self._channel = None  # the broker closed it
                    raise SourceError(f"{self._what}: no queue {queue!r}") from None
                depth += check_depth(ok.message_count, f"{self._what} queue {queue!r}")
        except (AMQPError, OSError, asyncio.TimeoutError) as exc:
            await self.close()
            raise SourceError(f"{self._what}: {one_line(exc)}") from None
        except SourceError:
            raise
        except BaseException:  # cancelled (timed out) mid-way: the connection's state is unknown
            await self.close()
            raise
        return QueueReading(depth)

    async def _open_channel(self) -> AbstractChannel:
        if self._conn is None or self._conn.is_closed:
            await self.close()
            conn = aiormq.Connection(self._url)
            try:
                await asyncio.wait_for(conn.connect(), self._timeout)
            except BaseException:
                await _close_quietly(conn)
                raise
            self._conn = conn
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._conn.channel(timeout=self._timeout)
        return self._channel

    async def close(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None:
            await _close_quietly(conn)


async def _close_quietly(conn: aiormq.Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), 1.0)
    except (AMQPError, OSError, asyncio.TimeoutError):
        pass
