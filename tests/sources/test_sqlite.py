"""The sqlite source on a real SQLite file: depth and age from a query, read-only,
bounded waits on a locked database, and recovery when the file appears."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from workerd.core.scaling import QueueReading
from workerd.sources.base import SourceError
from workerd.sources.sqlite import SqliteSource

COUNT = "SELECT count(*) FROM jobs"
WITH_AGE = "SELECT count(*), strftime('%s', 'now') - min(created) FROM jobs"


def make_db(path: Path, ages: list[float] = ()) -> None:  # type: ignore[assignment]
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY, created REAL)")
        db.executemany("INSERT INTO jobs (created) VALUES (?)", [(time.time() - a,) for a in ages])
    db.close()


def read(path: Path, query: str) -> QueueReading:
    async def body() -> QueueReading:
        source = SqliteSource(path, query)
        try:
            return await asyncio.wait_for(source.read(), 5)
        finally:
            await source.close()

    return asyncio.run(body())


def read_error(path: Path, query: str) -> str:
    with pytest.raises(SourceError) as caught:
        read(path, query)
    message = str(caught.value)
    assert message.startswith(f"sqlite {path}: "), message
    assert "\n" not in message
    return message


def test_a_second_column_is_the_age_of_the_oldest_job(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    make_db(db, [40, 10, 1])
    reading = read(db, WITH_AGE)
    assert reading.depth == 3
    assert reading.age is not None and 38 <= reading.age <= 42, reading


def test_an_empty_table_has_no_age(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    make_db(db)
    assert read(db, WITH_AGE) == QueueReading(0, None)


def test_a_query_with_no_row_is_an_error(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    make_db(db)
    assert read_error(db, "SELECT 1 FROM jobs WHERE 0").endswith("the query returned no row")


def test_a_negative_age_is_an_error(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    make_db(db)
    assert "not an age in seconds: -4" in read_error(db, "SELECT 1, -4")


def test_a_text_age_is_an_error(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    make_db(db)
    assert "not an age in seconds: 'old'" in read_error(db, "SELECT 1, 'old'")


def test_a_bad_query_is_an_error_with_sqlites_reason(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    make_db(db)
    assert read_error(db, "SELECT count(*) FROM nosuchtable").endswith("no such table: nosuchtable")


def test_the_source_never_writes(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    make_db(db, [1, 2])
    message = read_error(db, "DELETE FROM jobs RETURNING 1")
    assert "readonly" in message, message
    assert read(db, COUNT).depth == 2


def test_a_missing_file_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    db = tmp_path / "missing.db"
    assert read_error(db, COUNT).endswith("unable to open database file")
    assert not db.exists()


def test_the_same_source_recovers_when_the_file_appears(tmp_path: Path) -> None:
    db = tmp_path / "later.db"

    async def body() -> list[object]:
        source = SqliteSource(db, COUNT)
        seen: list[object] = []
        try:
            try:
                await source.read()
            except SourceError:
                seen.append("error")
            make_db(db, [1, 1, 1])
            seen.append((await source.read()).depth)
        finally:
            await source.close()
        return seen

    assert asyncio.run(body()) == ["error", 3]


def test_a_locked_database_fails_quickly_then_reads_again(tmp_path: Path) -> None:
    """A writer holding an exclusive lock blocks the daemon's loop for at most the busy
    timeout; the read fails (the count is held) and the next one succeeds."""
    db = tmp_path / "q.db"
    make_db(db, [1, 1])
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")

    async def body() -> tuple[str, float, int]:
        source = SqliteSource(db, COUNT)
        try:
            started = time.monotonic()
            with pytest.raises(SourceError) as caught:
                await source.read()
            took = time.monotonic() - started
            writer.execute("ROLLBACK")
            return str(caught.value), took, (await source.read()).depth
        finally:
            await source.close()

    try:
        message, took, depth = asyncio.run(body())
    finally:
        writer.close()
    assert "locked" in message, message
    assert took < 0.5, f"a locked database held the read for {took:.2f}s"
    assert depth == 2


def test_a_table_that_changes_between_reads_is_followed(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    make_db(db, [1] * 5)

    async def body() -> list[int]:
        source = SqliteSource(db, COUNT)
        depths = []
        try:
            depths.append((await source.read()).depth)
            w = sqlite3.connect(db)
            with w:
                w.execute("DELETE FROM jobs WHERE id <= 3")
            w.close()
            depths.append((await source.read()).depth)
        finally:
            await source.close()
        return depths

    assert asyncio.run(body()) == [5, 2]
