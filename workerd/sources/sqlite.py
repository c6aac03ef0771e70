"""Depth from a query on a SQLite file: the embedded default, no server needed.

sqlite3 only blocks, and the daemon has one thread; a read of a local database is
sub-millisecond, and the connection's busy timeout is kept short so that a writer
holding the lock delays the loop by at most that much (the read then fails and the
count is held until the next interval).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from workerd.core.scaling import QueueReading
from workerd.sources.base import SourceError, check_age, check_depth

#: Longest the loop waits for a writer's lock.
BUSY_TIMEOUT = 0.05


class SqliteSource:
    def __init__(self, path: Path, query: str) -> None:
        self._path = path
        self._query = query
        self._db: sqlite3.Connection | None = None

    async def read(self) -> QueueReading:
        try:
            if self._db is None:
                uri = f"{self._path.resolve().as_uri()}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT, isolation_level=None)
            row = self._db.execute(self._query).fetchone()
        except sqlite3.Error as exc:
            await self.close()
            raise SourceError(f"sqlite {self._path}: {exc}") from None
        if row is None:
            raise SourceError(f"sqlite {self._path}: the query returned no row")
        depth = check_depth(row[0], f"sqlite {self._path}")
        age = check_age(row[1], f"sqlite {self._path}") if len(row) > 1 else None
        return QueueReading(depth, age)

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
