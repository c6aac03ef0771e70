"""The redis source against a real Redis: lists, sorted sets and streams (with and
without consumer groups), several keys summed, the `format` presets on each job
library's real key layout, and a broker that is down, slow, or answers garbage.

Key layouts of the job libraries, as their own source code writes them (checked
in the libraries' repositories; see each test):

- Celery / kombu `kombu/transport/redis.py`: `_put` LPUSHes to `_q_for_pri(queue, pri)`,
  which is `queue` for priority 0 and `f"{queue}{sep}{pri}"` otherwise, with
  `sep = "\\x06\\x16"` and `PRIORITY_STEPS = [0, 3, 6, 9]`; `_size` sums LLEN over them.
- RQ `rq/queue.py`: `redis_queue_namespace_prefix = "rq:queue:"`; `push_job_id` RPUSHes
  the job id onto that list (`rq:queues` is the set of queue keys, `rq:job:<id>` a hash).
- BullMQ `src/classes/queue-keys.ts`: `bull:<queue>:<type>`; waiting jobs are in the
  `wait` list, prioritized ones in the `prioritized` sorted set (`delayed`, `active`,
  `completed`, `failed` are not backlog).
- Dramatiq `dramatiq/brokers/redis/dispatch.lua`: `$namespace:$queue_name` is "a list of
  message ids" (namespace "dramatiq"), bodies in the hash `$namespace:$queue_name.msgs`,
  delayed messages in the `.DQ` queue, dead letters in `.XQ`.
- arq `arq/constants.py`: `default_queue_name = "arq:queue"`; `enqueue_job` ZADDs the
  job id with score = enqueue time (or defer time) in ms to the queue name itself.
- Sidekiq `lib/sidekiq/client.rb` `atomic_push`: `conn.sadd("queues", queue)` and
  `conn.lpush("queue:#{queue}", ...)`; scheduled jobs go to the `schedule` sorted set.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.sources.services import eventually, left_after_close, run
from workerd.config.model import RedisFormat
from workerd.core.scaling import QueueReading
from workerd.sources.base import SourceError
from workerd.sources.layouts import library_keys
from workerd.sources.redis import RedisSource

READ_LIMIT = 5.0


def read_keys(url: str, keys: list[str], timeout: float = 1.0) -> QueueReading:
    return asyncio.run(_read(RedisSource(url, tuple(keys), None, None, timeout)))


def read_format(url: str, library: RedisFormat, queue: str) -> QueueReading:
    return asyncio.run(_read(RedisSource(url, None, library, queue, 1.0)))


async def _read(source: RedisSource) -> QueueReading:
    try:
        return await asyncio.wait_for(source.read(), READ_LIMIT)
    finally:
        await source.close()


def read_error(url: str, keys: list[str], timeout: float = 1.0) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        read_keys(url, keys, timeout)
    return str(caught.value), time.monotonic() - started


@pytest.fixture
def r(redis_url: str) -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def ms_ago(seconds: float) -> int:
    return int((time.time() - seconds) * 1000)


def add_entries(r: Any, key: str, ages: list[float]) -> list[bytes]:
    """Stream entries with ids from `ages` seconds ago (ids are milliseconds)."""
    return [r.xadd(key, {"n": i}, id=f"{ms_ago(age)}-0") for i, age in enumerate(ages)]


# -- lists, sorted sets, several keys ---------------------------------------------------------------


def test_lists_are_summed_over_keys_and_a_missing_key_is_empty(redis_url: str, redis_prefix: str, r: Any) -> None:
    a, b, missing = (f"{redis_prefix}{n}" for n in ("a", "b", "missing"))
    r.rpush(a, *range(3))
    r.lpush(b, *range(4))
    reading = read_keys(redis_url, [a, b, missing])
    assert reading == QueueReading(7, None)


def test_a_sorted_set_counts_its_members(redis_url: str, redis_prefix: str, r: Any) -> None:
    key = f"{redis_prefix}z"
    r.zadd(key, {f"job{i}": i for i in range(5)})
    assert read_keys(redis_url, [key]).depth == 5


def test_lists_sorted_sets_and_streams_sum_and_the_age_is_the_oldest(redis_url: str, redis_prefix: str,
                                                                      r: Any) -> None:
    lst, zset, stream = (f"{redis_prefix}{n}" for n in ("l", "z", "s"))
    r.rpush(lst, "a", "b")
    r.zadd(zset, {"x": 1, "y": 2, "z": 3})
    add_entries(r, stream, [40, 20, 1, 0.5])
    reading = read_keys(redis_url, [lst, zset, stream])
    assert reading.depth == 2 + 3 + 4
    assert reading.age is not None and 39 <= reading.age <= 45, reading


# -- streams --------------------------------------------------------------------------------------


def test_a_stream_without_a_group_is_its_length_and_the_age_of_its_first_entry(redis_url: str,
                                                                                redis_prefix: str,
                                                                                r: Any) -> None:
    key = f"{redis_prefix}s"
    add_entries(r, key, [30, 20, 10, 5, 1])
    reading = read_keys(redis_url, [key])
    assert reading.depth == 5
    assert reading.age is not None and 29 <= reading.age <= 35, reading


def test_an_empty_stream_reads_zero_with_no_age(redis_url: str, redis_prefix: str, r: Any) -> None:
    key = f"{redis_prefix}s"
    r.xgroup_create(key, "workers", id="$", mkstream=True)
    assert read_keys(redis_url, [key]) == QueueReading(0, None)


def test_a_stream_with_a_group_is_the_groups_lag(redis_url: str, redis_prefix: str, r: Any) -> None:
    key = f"{redis_prefix}s"
    add_entries(r, key, [30, 20, 10, 5, 1])
    r.xgroup_create(key, "workers", id="0")
    reading = read_keys(redis_url, [key])
    assert reading.depth == 5
    assert reading.age is not None and 29 <= reading.age <= 35, reading

    # two delivered (pending, not acked): no longer waiting; the age is of the next one
    r.xreadgroup("workers", "c1", {key: ">"}, count=2)
    reading = read_keys(redis_url, [key])
    assert reading.depth == 3
    assert reading.age is not None and 9 <= reading.age <= 15, reading


def test_a_stream_whose_group_has_read_everything_is_empty(redis_url: str, redis_prefix: str, r: Any) -> None:
    key = f"{redis_prefix}s"
    add_entries(r, key, [3, 2, 1])
    r.xgroup_create(key, "workers", id="0")
    r.xreadgroup("workers", "c1", {key: ">"}, count=10)
    assert read_keys(redis_url, [key]) == QueueReading(0, None)


def test_with_several_groups_the_slowest_counts(redis_url: str, redis_prefix: str, r: Any) -> None:
    key = f"{redis_prefix}s"
    add_entries(r, key, [30, 20, 10, 5, 1])
    r.xgroup_create(key, "fast", id="0")
    r.xgroup_create(key, "slow", id="0")
    r.xreadgroup("fast", "c1", {key: ">"}, count=4)
    r.xreadgroup("slow", "c1", {key: ">"}, count=1)
    reading = read_keys(redis_url, [key])
    assert reading.depth == 4
    assert reading.age is not None and 19 <= reading.age <= 25, reading


def test_when_redis_cannot_tell_the_lag_the_source_over_counts(redis_url: str, redis_prefix: str, r: Any) -> None:
    """XINFO GROUPS reports lag = nil once an entry after the group's last-delivered id
    was deleted; the source then counts the whole stream (over, never under)."""
    key = f"{redis_prefix}s"
    ids = add_entries(r, key, [30, 20, 10, 5, 1])
    r.xgroup_create(key, "workers", id="0")
    r.xreadgroup("workers", "c1", {key: ">"}, count=2)
    r.xdel(key, ids[3])
    assert r.xinfo_groups(key)[0]["lag"] is None   # the premise (Redis 7)
    assert read_keys(redis_url, [key]).depth >= 2  # two entries are still undelivered


def test_a_group_with_unknown_lag_is_not_ranked_below_a_group_with_a_small_one(redis_url: str,
                                                                               redis_prefix: str,
                                                                               r: Any) -> None:
    """Group `a` has 3 undelivered entries but Redis reports its lag as nil (an entry was
    deleted); group `b` has lag 1. The backlog is at least 3: an unknown lag must not
    count as 0 when picking the slowest group ("over-count, never under")."""
    key = f"{redis_prefix}s"
    ids = add_entries(r, key, [30, 20, 10, 5, 1])
    r.xgroup_create(key, "a", id="0")
    r.xreadgroup("a", "c1", {key: ">"}, count=2)
    r.xdel(key, ids[3])                           # a: ids 2 and 4 undelivered, lag nil from now on
    r.xgroup_create(key, "b", id="0")
    r.xreadgroup("b", "c1", {key: ">"}, count=10)  # b: read everything
    r.xadd(key, {"n": "new"})                      # a: 3 undelivered; b: 1
    lags = {g["name"]: g["lag"] for g in r.xinfo_groups(key)}
    assert lags == {b"a": None, b"b": 1}, lags    # the premise (Redis 7)
    assert read_keys(redis_url, [key]).depth >= 3


# -- wrong types and bad services -------------------------------------------------------------------


@pytest.mark.parametrize(("make", "kind"), [
    (lambda r, k: r.hset(k, mapping={"a": 1}), "hash"),
    (lambda r, k: r.set(k, "10"), "string"),
    (lambda r, k: r.sadd(k, "x"), "set"),
])
def test_a_key_of_another_type_is_an_error_naming_key_and_type(redis_url: str, redis_prefix: str, r: Any,
                                                               make: Any, kind: str) -> None:
    key = f"{redis_prefix}bad"
    make(r, key)
    good = f"{redis_prefix}good"
    r.rpush(good, "a")
    message, _ = read_error(redis_url, [good, key])
    assert message == f"redis key {key!r} is a {kind}, not a list, stream or sorted set"


def test_a_refused_connection_fails_at_once(redis_prefix: str) -> None:
    message, took = read_error("redis://127.0.0.1:1/0", [f"{redis_prefix}q"])
    assert took < 1.0
    assert message.startswith("redis redis://127.0.0.1:1/0: "), message
    assert "\n" not in message


def test_the_password_in_the_url_is_not_shown_in_the_error(redis_prefix: str) -> None:
    """The message goes to `workerctl status` (readable by socket_group) and the log."""
    message, _ = read_error("redis://:s3cret-pw@127.0.0.1:1/0", [f"{redis_prefix}q"])
    assert "s3cret-pw" not in message, message


class SilentServer:
    """Accepts TCP connections and never answers (a hung broker), or answers
    `reply` to whatever it reads (a broker that speaks garbage)."""

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.done = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.done:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)
            if self.reply is not None:
                conn.settimeout(1)
                try:
                    conn.recv(4096)
                    conn.sendall(self.reply)
                except OSError:
                    pass

    def close(self) -> None:
        self.done = True
        self.thread.join(2)
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.fixture
def server_factory() -> Iterator[Any]:
    servers: list[SilentServer] = []

    def make(reply: bytes | None) -> SilentServer:
        servers.append(SilentServer(reply))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def test_a_broker_that_never_answers_fails_within_the_timeout(server_factory: Any) -> None:
    server = server_factory(None)
    message, took = read_error(f"redis://127.0.0.1:{server.port}/0", ["q"], timeout=0.3)
    assert took < 2.0, f"took {took:.2f}s with a 0.3s timeout"
    assert message.startswith(f"redis redis://127.0.0.1:{server.port}/0: "), message


@pytest.mark.parametrize("reply", [b"hello there\r\n", b"-ERR who are you\r\n", b":-5\r\n" * 8])
def test_a_broker_that_answers_garbage_is_a_source_error(server_factory: Any, reply: bytes) -> None:
    server = server_factory(reply)
    message, took = read_error(f"redis://127.0.0.1:{server.port}/0", ["q"], timeout=0.5)
    assert took < 2.0
    assert message.startswith("redis"), message


def test_the_same_source_recovers_when_its_server_comes_back(own_redis: Any) -> None:
    own_redis.start()
    with own_redis.client() as c:
        c.rpush("q", "a", "b")
    own_redis.save()

    async def body() -> list[object]:
        source = RedisSource(own_redis.url, ("q",), None, None, 0.5)
        seen: list[object] = []
        try:
            seen.append((await asyncio.wait_for(source.read(), READ_LIMIT)).depth)
            own_redis.kill()
            try:
                await asyncio.wait_for(source.read(), READ_LIMIT)
                seen.append("no error")
            except SourceError:
                seen.append("error")
            own_redis.start()
            seen.append((await asyncio.wait_for(source.read(), READ_LIMIT)).depth)
        finally:
            await source.close()
        return seen

    assert asyncio.run(body()) == [2, "error", 2]


def test_close_ends_the_keyspace_listener(redis_url: str, redis_prefix: str, r: Any) -> None:
    key = f"{redis_prefix}q"
    source = RedisSource(redis_url, (key,), None, None, 1.0)
    channel = f"__keyspace@0__:{key}"

    async def subscribed() -> bool:
        return await subscribers() > 0

    async def subscribers() -> int:
        return int(r.pubsub_numsub(channel)[0][1])

    async def body() -> tuple[list[str], int]:
        return await left_after_close(source, subscribed), await eventually(subscribers, 0)

    assert run(body()) == ([], 0)


# -- format presets: each library's real key layout ----------------------------------------------------


@pytest.mark.parametrize(("library", "keys"), [
    (RedisFormat.CELERY, ["emails", "emails\x06\x163", "emails\x06\x166", "emails\x06\x169"]),
    (RedisFormat.RQ, ["rq:queue:emails"]),
    (RedisFormat.BULLMQ, ["bull:emails:wait", "bull:emails:prioritized"]),
    (RedisFormat.DRAMATIQ, ["dramatiq:emails"]),
    (RedisFormat.ARQ, ["emails"]),
    (RedisFormat.SIDEKIQ, ["queue:emails"]),
])
def test_library_keys_match_the_libraries_own_layout(library: RedisFormat, keys: list[str]) -> None:
    assert library_keys(library, "emails") == keys


def test_every_format_has_a_layout() -> None:
    for library in RedisFormat:
        assert library_keys(library, "q"), library


def test_celery_counts_the_queue_and_its_priority_lists(redis_url: str, redis_prefix: str, r: Any) -> None:
    queue = f"{redis_prefix[:-1]}-celery"
    sep = "\x06\x16"
    r.lpush(queue, *["m"] * 3)                      # priority 0: the bare queue name
    r.lpush(f"{queue}{sep}3", *["m"] * 2)
    r.lpush(f"{queue}{sep}9", "m")
    r.sadd(f"_kombu.binding.{queue}", f"{queue}{sep}{sep}{queue}")   # kombu's binding set: not a queue
    r.hset(f"unacked-{redis_prefix}", "tag", "m")                    # being processed: not backlog
    assert read_format(redis_url, RedisFormat.CELERY, queue).depth == 6
    r.delete(f"_kombu.binding.{queue}")


def test_rq_counts_the_queue_list_as_rq_itself_fills_it(redis_url: str, redis_prefix: str, r: Any) -> None:
    rq = pytest.importorskip("rq", reason="RQ is in the test extra")
    queue_name = f"{redis_prefix[:-1]}-rq"
    queue = rq.Queue(queue_name, connection=r)
    jobs = [queue.enqueue("os.getpid") for _ in range(4)]
    try:
        assert queue.key == f"rq:queue:{queue_name}"
        assert read_format(redis_url, RedisFormat.RQ, queue_name).depth == 4 == queue.count
        jobs.append(queue.enqueue_in(timedelta(hours=1), "os.getpid"))   # scheduled: not due yet
        assert read_format(redis_url, RedisFormat.RQ, queue_name).depth == 4
    finally:
        queue.delete(delete_jobs=True)
        for job in jobs:
            r.delete(job.key)
        r.srem("rq:queues", f"rq:queue:{queue_name}")


def test_bullmq_counts_waiting_and_prioritized_jobs(redis_url: str, redis_prefix: str, r: Any) -> None:
    queue = f"{redis_prefix[:-1]}-bull"
    base = f"bull:{queue}"
    r.hset(f"{base}:meta", mapping={"opts.maxLenEvents": 10000})
    r.set(f"{base}:id", 9)
    r.lpush(f"{base}:wait", "1", "2", "3")
    r.zadd(f"{base}:prioritized", {"4": (1 << 32) + 1, "5": (2 << 32) + 2})
    r.zadd(f"{base}:delayed", {"6": time.time() * 1000 + 60_000})   # not due: not backlog
    r.lpush(f"{base}:active", "7")                                   # being processed
    r.zadd(f"{base}:completed", {"8": 1})
    r.hset(f"{base}:1", mapping={"name": "job", "data": "{}"})        # a job hash
    assert read_format(redis_url, RedisFormat.BULLMQ, queue).depth == 5


def test_dramatiq_counts_the_message_id_list(redis_url: str, redis_prefix: str, r: Any) -> None:
    queue = f"{redis_prefix[:-1]}-dq"
    r.hset(f"dramatiq:{queue}.msgs", mapping={"id1": "{}", "id2": "{}", "id3": "{}"})
    r.rpush(f"dramatiq:{queue}", "id1", "id2", "id3")
    r.rpush(f"dramatiq:{queue}.DQ", "id9")            # delayed: its own queue
    r.zadd(f"dramatiq:{queue}.XQ", {"id8": 1})         # dead letters
    assert read_format(redis_url, RedisFormat.DRAMATIQ, queue).depth == 3


def test_arq_counts_due_jobs_and_their_age(redis_url: str, redis_prefix: str, r: Any) -> None:
    queue = f"{redis_prefix[:-1]}:arq:queue"
    now_ms = time.time() * 1000
    r.zadd(queue, {"due-old": now_ms - 20_000, "due-new": now_ms - 1_000, "deferred": now_ms + 60_000})
    r.psetex(f"arq:job:due-old-{redis_prefix[:-1]}", 60_000, b"x")
    reading = read_format(redis_url, RedisFormat.ARQ, queue)
    assert reading.depth == 2
    assert reading.age is not None and 19 <= reading.age <= 25, reading


def test_arq_with_only_deferred_jobs_is_empty(redis_url: str, redis_prefix: str, r: Any) -> None:
    queue = f"{redis_prefix[:-1]}:arq:queue"
    r.zadd(queue, {"later": time.time() * 1000 + 60_000})
    assert read_format(redis_url, RedisFormat.ARQ, queue) == QueueReading(0, None)


def test_sidekiq_counts_the_queue_list(redis_url: str, redis_prefix: str, r: Any) -> None:
    queue = f"{redis_prefix[:-1]}-sq"
    r.sadd("queues", queue)
    try:
        r.lpush(f"queue:{queue}", '{"class":"A","args":[]}', '{"class":"B","args":[]}')
        r.zadd(f"schedule-{redis_prefix[:-1]}", {'{"class":"C"}': time.time() + 60})
        assert read_format(redis_url, RedisFormat.SIDEKIQ, queue).depth == 2
    finally:
        r.srem("queues", queue)


def test_a_format_queue_that_does_not_exist_yet_is_empty(redis_url: str, redis_prefix: str) -> None:
    for library in RedisFormat:
        assert read_format(redis_url, library, f"{redis_prefix[:-1]}-nothing").depth == 0, library
