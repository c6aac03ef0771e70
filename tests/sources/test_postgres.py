"""The `postgres` source against the PostgreSQL at 127.0.0.1:5432 (database `test`), on a
jobs table of the test's own, dropped afterwards."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port
from tests.sources.services import (
    POSTGRES_URL,
    PREFIX,
    black_hole,
    config_error,
    eventually,
    left_after_close,
    load_autoscale,
    missing,
    need_client,
    read,
    read_closing,
    run,
    timed,
    without_module,
)
from workerd.config.model import Source as SourceKind
from workerd.core.scaling import QueueReading
from workerd.sources.base import SourceError

psycopg = need_client("psycopg", "postgres")

from workerd.sources.postgres import PostgresSource  # noqa: E402  (needs psycopg)


@pytest.fixture(scope="module")
def postgres() -> str:
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=2).close()
    except psycopg.Error as exc:
        missing(f"PostgreSQL at {POSTGRES_URL}", " ".join(str(exc).split()))
    return POSTGRES_URL


class Jobs:
    def __init__(self, url: str) -> None:
        self.url = url
        self.table = f"wd_jobs_{uuid.uuid4().hex[:8]}"
        self.sql(f"CREATE TABLE {self.table} (id serial PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now())")

    def sql(self, statement: str) -> Any:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(statement)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else None

    def push(self, n: int, age: float = 0.0) -> None:
        self.sql(f"INSERT INTO {self.table} (created_at) SELECT now() - interval '{age} seconds' "
                 f"FROM generate_series(1, {n})")

    def source(self, query: str | None = None, timeout: float = 5.0) -> PostgresSource:
        return PostgresSource(self.url, query or f"SELECT count(*) FROM {self.table}", timeout)


@pytest.fixture
def jobs(postgres: str) -> Iterator[Jobs]:
    jobs = Jobs(postgres)
    yield jobs
    jobs.sql(f"DROP TABLE IF EXISTS {jobs.table}")


def test_close_ends_the_notify_listener(jobs: Jobs) -> None:
    channel = f"wd_close_{uuid.uuid4().hex[:8]}"
    source = PostgresSource(jobs.url, "SELECT 0", 5.0, listen=channel)

    async def listeners() -> int:
        return int(jobs.sql(f"SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN \"{channel}\"'")[0][0])

    async def listened() -> bool:
        return await listeners() > 0

    async def body() -> tuple[list[str], int]:
        return await left_after_close(source, listened), await eventually(listeners, 0)

    assert run(body()) == ([], 0)


def test_an_empty_queue_reads_0(jobs: Jobs) -> None:
    assert run(read_closing(jobs.source())) == QueueReading(0)


def test_n_jobs_read_n_again_and_again(jobs: Jobs) -> None:
    async def body() -> list[QueueReading]:
        source = jobs.source()
        readings = [await read(source)]
        jobs.push(5)
        readings.append(await read(source))
        jobs.push(3)
        readings.append(await read(source))
        await source.close()
        return readings

    assert run(body()) == [QueueReading(0), QueueReading(5), QueueReading(8)]


def test_the_age_of_the_oldest_job_as_a_second_column(jobs: Jobs) -> None:
    jobs.push(2, age=30)
    jobs.push(1)
    for age_sql in (
        "extract(epoch FROM now() - min(created_at))",  # numeric (a Decimal)
        "now() - min(created_at)",  # an interval
        "extract(epoch FROM now() - min(created_at))::float8",
    ):
        reading = run(read_closing(jobs.source(f"SELECT count(*), {age_sql} FROM {jobs.table}")))
        assert reading.depth == 3
        assert reading.age is not None and 29 < reading.age < 60


def test_an_empty_table_has_no_age(jobs: Jobs) -> None:
    query = f"SELECT count(*), extract(epoch FROM now() - min(created_at)) FROM {jobs.table}"
    assert run(read_closing(jobs.source(query))) == QueueReading(0, None)


def test_numeric_and_bigint_depths(jobs: Jobs) -> None:
    assert run(read_closing(jobs.source("SELECT 12::numeric"))) == QueueReading(12)
    assert run(read_closing(jobs.source("SELECT 12::bigint + 0"))) == QueueReading(12)
    assert run(read_closing(jobs.source("SELECT sum(x) FROM (VALUES (2), (3)) AS t(x)"))) == QueueReading(5)


def test_the_connection_is_kept_between_readings(jobs: Jobs) -> None:
    async def body() -> tuple[QueueReading, QueueReading]:
        source = jobs.source("SELECT pg_backend_pid()")
        first, second = await read(source), await read(source)
        await source.close()
        return first, second

    first, second = run(body())
    assert first == second


def test_a_dropped_connection_is_an_error_then_a_new_one_is_made(jobs: Jobs) -> None:
    async def body() -> tuple[int, Any, int]:
        source = jobs.source("SELECT pg_backend_pid()")
        backend = (await read(source)).depth
        jobs.sql(f"SELECT pg_terminate_backend({backend})")
        failed, _ = await timed(read(source))
        again = (await read(source)).depth
        await source.close()
        return backend, failed, again

    backend, failed, again = run(body())
    assert isinstance(failed, SourceError)
    assert str(failed).startswith("postgres postgresql://postgres@127.0.0.1:5432/test: ")
    assert again != backend


@pytest.mark.parametrize(("query", "why"), [
    ("SELECT 'many'", "not a number: 'many'"),
    ("SELECT -4", "negative depth -4"),
    ("SELECT NULL::int", "not a number: None"),
    ("SELECT 'NaN'::numeric", "not a number: nan"),
    ("SELECT 1, -5", "not an age in seconds: -5"),
    ("SELECT 1 WHERE false", "the query returned no row"),
    ("SELECT count(*) FROM wd_no_such_table", 'relation "wd_no_such_table" does not exist'),
    ("SELEKT 1", 'syntax error at or near "SELEKT"'),
])
def test_garbage_is_a_source_error(jobs: Jobs, query: str, why: str) -> None:
    result, _ = run(timed(read_closing(jobs.source(query))))
    assert isinstance(result, SourceError)
    assert str(result).startswith("postgres postgresql://postgres@127.0.0.1:5432/test: ")
    assert why in str(result)
    assert "\n" not in str(result)


def test_after_an_sql_error_the_next_reading_works(jobs: Jobs) -> None:
    async def body() -> tuple[Any, QueueReading]:
        table = f"{jobs.table}_later"
        source = jobs.source(f"SELECT count(*) FROM {table}")
        failed, _ = await timed(read(source))
        jobs.sql(f"CREATE TABLE {table} (id int)")
        try:
            return failed, await read(source)
        finally:
            await source.close()
            jobs.sql(f"DROP TABLE {table}")

    failed, reading = run(body())
    assert isinstance(failed, SourceError)
    assert reading == QueueReading(0)


def test_a_slow_query_is_cut_by_the_server_at_the_timeout(jobs: Jobs) -> None:
    async def body() -> tuple[Any, float, QueueReading]:
        source = jobs.source("SELECT count(*) FROM pg_sleep(10)", timeout=1.0)
        failed, took = await timed(read(source))
        source_ok = jobs.source("SELECT 1", timeout=1.0)
        try:
            return failed, took, await read(source_ok)
        finally:
            await source.close()
            await source_ok.close()

    failed, took, reading = run(body())
    assert isinstance(failed, SourceError)
    assert "canceling statement due to statement timeout" in str(failed)
    assert took < 3
    assert reading == QueueReading(1)


def test_a_password_is_not_shown(postgres: str) -> None:
    source = PostgresSource(f"postgresql://postgres:s3cret@127.0.0.1:{free_port()}/test", "SELECT 1", 2.0)
    result, _ = run(timed(read_closing(source)))
    assert isinstance(result, SourceError)
    assert "s3cret" not in str(result) and "postgres:***@127.0.0.1" in str(result)


def test_a_refused_port_is_an_error_at_once() -> None:
    source = PostgresSource(f"postgresql://postgres@127.0.0.1:{free_port()}/test", "SELECT 1", 2.0)
    result, took = run(timed(read_closing(source)))
    assert isinstance(result, SourceError)
    assert "Connection refused" in str(result)
    assert took < 2


def test_a_server_that_never_answers_is_an_error_after_the_timeout() -> None:
    with black_hole() as port:
        source = PostgresSource(f"postgresql://postgres@127.0.0.1:{port}/test", "SELECT 1", 1.0)
        result, took = run(timed(read_closing(source)))
    assert isinstance(result, SourceError)
    assert str(result) == f"postgres postgresql://postgres@127.0.0.1:{port}/test: cannot connect in 1s"
    assert 0.9 < took < 3


def test_a_reading_cancelled_mid_query_leaves_a_working_source(jobs: Jobs) -> None:
    """The autoscaler's wait_for cancels a slow reading: promptly (psycopg cancels the
    query on the server), and the next reading works."""

    async def body() -> tuple[float, QueueReading]:
        count = f"(SELECT count(*) FROM {jobs.table})"  # slow only while the table is empty
        source = jobs.source(f"SELECT {count} FROM pg_sleep(CASE WHEN {count} = 0 THEN 5 ELSE 0 END)", timeout=10)
        started = asyncio.get_running_loop().time()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(source.read(), 0.5)
        took = asyncio.get_running_loop().time() - started
        jobs.push(2)
        try:
            return took, await read(source)
        finally:
            await source.close()

    took, reading = run(body())
    assert took < 2
    assert reading == QueueReading(2)


# -- config --------------------------------------------------------------------------------


def test_config(tmp_path: Path) -> None:
    config = load_autoscale(tmp_path, 'source = "postgres"\nurl = "postgresql://app@db/app"\n'
                                      'query = "SELECT count(*) FROM jobs"\n')
    assert config.source is SourceKind.POSTGRES
    assert (config.url, config.query) == ("postgresql://app@db/app", "SELECT count(*) FROM jobs")


@pytest.mark.parametrize(("body", "message"), [
    ('source = "postgres"\nquery = "SELECT 1"\n', f"{PREFIX}.source: source 'postgres' needs url"),
    ('source = "postgres"\nurl = "postgresql://h/db"\n', f"{PREFIX}.source: source 'postgres' needs query"),
    ('source = "postgres"\nurl = "mysql://h/db"\nquery = "SELECT 1"\n',
     f"{PREFIX}.url: expected a URL starting with postgresql:// or postgres://, got 'mysql://h/db'"),
    ('source = "postgres"\nurl = "postgresql://h/db"\nquery = "SELECT 1"\nkeys = ["a"]\n',
     f"{PREFIX}.keys: not used by source 'postgres'"),
    ('source = "postgres"\nurl = "postgresql://h/db"\nquery = 1\n', f"{PREFIX}.query: expected a string, got 1"),
])
def test_config_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, message: str) -> None:
    assert config_error(tmp_path, body, monkeypatch) == message


def test_config_without_the_client_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    without_module(monkeypatch, "psycopg")
    body = 'source = "postgres"\nurl = "postgresql://h/db"\nquery = "SELECT 1"\n'
    assert (config_error(tmp_path, body, monkeypatch)
            == f"{PREFIX}.source: the postgres client is not installed: pip install 'workerd[postgres]'")
