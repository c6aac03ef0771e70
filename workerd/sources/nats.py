"""Depth from NATS JetStream (nats-py): a durable consumer's pending count.

`num_pending` is the number of messages in the stream that match the consumer and
have not been delivered to it yet: the backlog, like RabbitMQ's "ready" and SQS's
visible messages. Messages delivered and not acknowledged yet (`num_ack_pending`)
are being worked on, so they are not counted.

One connection is kept, without nats-py's own reconnect loop (it would queue our
requests while it retries): after an error the connection is closed and the next
reading connects again, bounded by `timeout` like the request itself.
"""

from __future__ import annotations

import asyncio
import math

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import NoServersError
from nats.js.errors import NotFoundError

from workerd.core.scaling import QueueReading
from workerd.sources.base import SourceError, check_depth, one_line, redact


async def _ignore() -> None:
    """For nats-py's disconnected and closed callbacks: a reading reports its own failure."""


class NatsSource:
    def __init__(self, url: str, stream: str, consumer: str, timeout: float) -> None:
        self._url = url
        self._stream = stream
        self._consumer = consumer
        self._timeout = timeout
        self._what = f"nats {redact(url)} consumer {stream}/{consumer}"
        self._client: Client | None = None
        #: The last error nats-py met while connecting (it says only "no servers" in the end).
        self._connect_error: BaseException | None = None
        #: Set when a message is published on the stream's subjects; cleared by the
        #: autoscaler before each reading.
        self.pushed = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None

    def watch(self) -> None:
        if self._listener is None:
            self._listener = asyncio.ensure_future(self._listen())

    async def _listen(self) -> None:
        """On a connection of its own, subscribe to the stream's subjects and set `pushed`
        at each message; reconnect quietly after errors (the interval still reads)."""
        while True:
            client, gone = Client(), asyncio.Event()

            async def on_gone(gone: asyncio.Event = gone) -> None:
                """Bound to this connection's event: a late callback of an old client ends no newer one."""
                gone.set()

            async def on_error(error: Exception) -> None:
                pass  # a reading reports the server's problems

            async def on_message(message: object) -> None:
                self.pushed.set()

            try:
                await client.connect(
                    self._url, allow_reconnect=False, max_reconnect_attempts=1, reconnect_time_wait=0,
                    connect_timeout=max(1, math.ceil(self._timeout / 2)), error_cb=on_error,
                    disconnected_cb=on_gone, closed_cb=on_gone,
                )
                info = await client.jetstream(timeout=self._timeout).stream_info(self._stream)
                for subject in info.config.subjects or ():
                    await client.subscribe(subject, cb=on_message)
                await gone.wait()
            except (NatsError, OSError, asyncio.TimeoutError):
                pass
            finally:
                if not client.is_closed:
                    try:
                        await asyncio.wait_for(client.close(), 1.0)
                    except (NatsError, OSError, asyncio.TimeoutError):
                        pass
            await asyncio.sleep(self._timeout)

    async def read(self) -> QueueReading:
        try:
            client = await self._connection()
            info = await client.jetstream(timeout=self._timeout).consumer_info(
                self._stream, self._consumer, timeout=self._timeout
            )
        except NoServersError:
            await self._drop()
            why = one_line(self._connect_error) if self._connect_error else "no server answered"
            raise SourceError(f"{self._what}: cannot connect: {why}") from None
        except NotFoundError as exc:
            raise SourceError(f"{self._what}: not found ({exc.description or 'no such stream or consumer'})") from None
        except (NatsError, OSError, asyncio.TimeoutError) as exc:
            await self._drop()
            raise SourceError(f"{self._what}: {one_line(exc)}") from None
        except BaseException:  # cancelled (timed out) mid-way
            await self._drop()
            raise
        return QueueReading(check_depth(info.num_pending, self._what))

    async def _connection(self) -> Client:
        if self._client is not None and self._client.is_connected:
            return self._client
        await self._drop()
        client = Client()
        self._client = client  # so that _drop() reaches a connect that is cancelled
        self._connect_error = None
        # nats-py retries a server until it has failed more than max_reconnect_attempts
        # times (0 would mean forever): 1 and no wait make two quick attempts.
        await client.connect(
            self._url,
            allow_reconnect=False,
            max_reconnect_attempts=1,
            reconnect_time_wait=0,
            connect_timeout=max(1, math.ceil(self._timeout / 2)),
            error_cb=self._remember,
            disconnected_cb=_ignore,
            closed_cb=_ignore,
        )
        return client

    async def _remember(self, error: Exception) -> None:
        self._connect_error = error

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            try:
                await self._listener
            except (asyncio.CancelledError, NatsError, OSError):
                pass
            self._listener = None
        await self._drop()

    async def _drop(self) -> None:
        """Close the reading connection; the next reading connects again."""
        client, self._client = self._client, None
        if client is not None and not client.is_closed:
            try:
                await asyncio.wait_for(client.close(), 1.0)
            except (NatsError, OSError, asyncio.TimeoutError):
                pass
