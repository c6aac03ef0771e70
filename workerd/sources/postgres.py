"""Depth from a SQL query on PostgreSQL (psycopg 3, async): a jobs table, procrastinate's...

The query returns one row: the depth, and optionally the age in seconds of the oldest
job as a second column. `count(*)` comes back as an int, `sum()` and `extract(epoch
...)` as a Decimal, `now() - min(created_at)` as an interval: all are taken.

One connection is kept (autocommit: each reading sees the latest commits and holds no
snapshot open); after any error it is dropped and the next reading connects again.
Every step is bounded: the connect by `timeout` (libpq's connect_timeout has a 2 s
floor, so it is also wrapped), the query by a server-side statement_timeout of the
same length, and the whole reading by the autoscaler's own timeout.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import math

import psycopg
from psycopg import sql

from workerd.core.scaling import QueueReading
from workerd.sources.base import SourceError, check_age, check_depth, one_line, redact


class PostgresSource:
    def __init__(self, url: str, query: str, timeout: float, listen: str | None = None) -> None:
        self._url = url
        self._query = query
        self._timeout = timeout
        self._listen = listen
        self._what = f"postgres {redact(url)}"
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        #: Set by a NOTIFY on `listen`; cleared by the autoscaler before each reading.
        self.pushed = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None

    def watch(self) -> None:
        if self._listen is not None and self._listener is None:
            self._listener = asyncio.ensure_future(self._listen_for_jobs(self._listen))

    async def _listen_for_jobs(self, channel: str) -> None:
        """LISTEN on its own connection and set `pushed` at each NOTIFY; reconnect
        quietly after errors (the interval still reads the queue)."""
        while True:
            try:
                conn = await asyncio.wait_for(
                    psycopg.AsyncConnection.connect(self._url, autocommit=True), self._timeout
                )
                async with conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    async for _ in conn.notifies():
                        self.pushed.set()
            except (psycopg.Error, OSError, asyncio.TimeoutError):
                await asyncio.sleep(self._timeout)

    async def read(self) -> QueueReading:
        try:
            conn = await self._connection()
            async with conn.cursor() as cur:
                await cur.execute(self._query)
                row = await cur.fetchone()
        except psycopg.Error as exc:
            await self._drop()
            raise SourceError(f"{self._what}: {one_line(exc)}") from None
        except BaseException:  # cancelled (timed out) mid-way: the connection's state is unknown
            await self._drop()
            raise
        if row is None:
            raise SourceError(f"{self._what}: the query returned no row")
        depth = check_depth(_number(row[0]), self._what)
        age = check_age(_number(row[1]), self._what) if len(row) > 1 else None
        return QueueReading(depth, age)

    async def _connection(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        self._conn = None
        try:
            conn = await asyncio.wait_for(
                psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=max(2, math.ceil(self._timeout))
                ),
                self._timeout,
            )
        except asyncio.TimeoutError:
            raise SourceError(f"{self._what}: cannot connect in {self._timeout:g}s") from None
        try:
            await conn.execute(f"SET statement_timeout = {max(1, int(self._timeout * 1000))}")
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        return conn

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            try:
                await self._listener
            except (asyncio.CancelledError, psycopg.Error, OSError):
                pass
            self._listener = None
        await self._drop()

    async def _drop(self) -> None:
        """Close the reading connection; the next reading connects again."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except psycopg.Error:
                pass


def _number(value: object) -> object:
    """A SQL number or interval as a Python int or float; anything else as it is
    (check_depth and check_age name what is wrong with it)."""
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else math.nan
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return value
