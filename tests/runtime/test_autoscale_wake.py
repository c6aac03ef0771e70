"""A program at zero wakes on the broker's push, not at the next interval.

The interval is long (5 s), so a worker running sooner after the first job can only
have been started by the push: Redis keyspace events (from a private redis-server
with `notify-keyspace-events Kl`), PostgreSQL NOTIFY and NATS messages."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.conftest import bounded_wait
from tests.sources.redis_server import RedisServer
from tests.sources.services import NATS_URL, POSTGRES_URL, need_client, need_port


@pytest.fixture
def notifying_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    with server.client() as client:
        client.config_set("notify-keyspace-events", "Kl")
    yield server
    server.stop()


def program(url: str) -> str:
    return f"""
        [programs.w]
        command = "sleep 1001"
        start_seconds = "0s"
        stop_timeout = "2s"
        [programs.w.autoscale]
        source = "redis"
        url = "{url}"
        keys = ["jobs"]
        min = 0
        max = 2
        per_worker = 1
        interval = "5s"
    """


def test_the_first_job_wakes_a_program_at_zero(daemon, notifying_redis):
    d = daemon(program(notifying_redis.url))
    d.wait_status(lambda s: s["programs"][0]["autoscale"]["depth"] == 0, 10, "the first reading")
    with notifying_redis.client() as client:
        # the listener subscribes right after the first reading
        d.wait_until(lambda: dict(client.pubsub_numsub("__keyspace@0__:jobs")).get(b"__keyspace@0__:jobs"), 5,
                     "the daemon subscribed to the list's keyspace events")
        started = time.monotonic()
        client.rpush("jobs", "job-1")
    d.wait_running("w", 1, timeout=4.5)
    assert time.monotonic() - started < 4.5  # less than the 5 s interval


def test_a_notify_wakes_a_postgres_program_at_zero(daemon):
    need_port("PostgreSQL", 5432)
    psycopg = need_client("psycopg", "postgres")
    suffix = uuid.uuid4().hex[:8]
    table, channel = f"wake_jobs_{suffix}", f"wake_{suffix}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY)")
        try:
            d = daemon(f"""
                [programs.w]
                command = "sleep 1001"
                start_seconds = "0s"
                stop_timeout = "2s"
                [programs.w.autoscale]
                source = "postgres"
                url = "{POSTGRES_URL}"
                query = "SELECT count(*) FROM {table}"
                listen = "{channel}"
                min = 0
                max = 2
                per_worker = 1
                interval = "5s"
            """)
            d.wait_status(lambda s: s["programs"][0]["autoscale"]["depth"] == 0, 10, "the first reading")
            # the listener connects right after the first reading
            listening = f"SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN \"{channel}\"'"
            d.wait_until(lambda: conn.execute(listening).fetchone()[0], 5, f"the daemon LISTENing on {channel}")
            started = time.monotonic()
            conn.execute(f"INSERT INTO {table} DEFAULT VALUES")
            conn.execute(f"NOTIFY {channel}")
            d.wait_running("w", 1, timeout=4.5)
            assert time.monotonic() - started < 4.5  # less than the 5 s interval
        finally:
            conn.execute(f"DROP TABLE {table}")


def test_a_message_on_the_stream_wakes_a_nats_program_at_zero(daemon):
    need_port("NATS", 4222)
    nats = need_client("nats", "nats")
    tag = uuid.uuid4().hex[:8]
    stream, subject = f"wdwake-{tag}", f"wdwake.{tag}.jobs"

    async def setup() -> None:
        client = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
        try:
            js = client.jetstream(timeout=5)
            await js.add_stream(name=stream, subjects=[subject])
            await js.add_consumer(stream, durable_name="workers", ack_policy="explicit")
        finally:
            await client.close()

    async def publish() -> None:
        client = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
        try:
            await client.jetstream(timeout=5).publish(subject, b"job")
        finally:
            await client.close()

    async def teardown() -> None:
        client = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
        try:
            await client.jetstream(timeout=5).delete_stream(stream)
        finally:
            await client.close()

    asyncio.run(setup())
    try:
        d = daemon(f"""
            [programs.w]
            command = "sleep 1001"
            start_seconds = "0s"
            stop_timeout = "2s"
            [programs.w.autoscale]
            source = "nats"
            url = "{NATS_URL}"
            stream = "{stream}"
            consumer = "workers"
            min = 0
            max = 2
            per_worker = 1
            interval = "5s"
        """)
        d.wait_status(lambda s: s["programs"][0]["autoscale"]["depth"] == 0, 10, "the first reading")
        # The listener subscribes right after the first reading, and this server shows no
        # subscriptions: publish every 0.2 s until a worker runs, which must be well before
        # the next reading (5 s after the first one).
        def woken() -> bool:
            if d.pids("w"):
                return True
            asyncio.run(publish())
            return False

        bounded_wait(woken, 4.5, "a worker woken by a message", d.describe, interval=0.2)
    finally:
        asyncio.run(teardown())
