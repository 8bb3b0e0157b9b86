"""SQLite locked by another process (issue 11 item 7), on the engine itself with a short lock
wait: every queued writer gives up after the wait counted from its own arrival (not one wait
after another), as DatabaseUnavailable; nothing of theirs is written; reads go on; once the lock
is gone writes succeed again."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from telemeeting.store.connection import DatabaseUnavailable
from telemeeting.store.sql import Statement
from telemeeting.store.sqlite import SqliteConnection, SqliteEngine

WAIT = 0.4
_CREATE = Statement("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY)")
_INSERT = Statement("INSERT INTO t (k) VALUES (:k)")
_KEYS = Statement("SELECT k FROM t ORDER BY k")


async def _write(engine: SqliteEngine, key: str) -> None:
    async with engine.writer() as connection:
        await connection.execute(_INSERT, {"k": key})


async def _keys(engine: SqliteEngine) -> list[str]:
    async with engine.reader() as connection:
        return [row[0] for row in await connection.fetch(_KEYS)]


def test_writers_queued_behind_a_locked_database_give_up_together(tmp_path: Path) -> None:
    path = str(tmp_path / "locked.db")

    async def scenario() -> None:
        engine = SqliteEngine(path, lock_wait=WAIT)
        try:
            await _write_schema(engine)
            await _write(engine, "before")
            holder = sqlite3.connect(path, isolation_level=None, timeout=0)
            holder.execute("BEGIN IMMEDIATE")
            try:
                started = time.monotonic()
                outcomes = await asyncio.gather(
                    *(_write(engine, f"locked-{k}") for k in range(4)), return_exceptions=True
                )
                waited = time.monotonic() - started
                assert all(isinstance(o, DatabaseUnavailable) for o in outcomes), outcomes
                assert WAIT <= waited < 2 * WAIT, waited  # together, not 4 waits in a row
                assert await _keys(engine) == ["before"]  # reads do not wait for the lock
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            await _write(engine, "after")
            assert await _keys(engine) == ["after", "before"]
        finally:
            await engine.dispose()

    asyncio.run(scenario())


async def _write_schema(engine: SqliteEngine) -> None:
    async with engine.writer() as connection:
        await connection.execute(_CREATE)


def test_a_statement_refused_for_want_of_the_file_is_database_unavailable(
    tmp_path: Path,
) -> None:
    """A statement that meets another process's lock (here: an exclusive one on a file without
    WAL, where readers wait too) is DatabaseUnavailable, not a driver error the API would
    answer -100."""
    path = str(tmp_path / "exclusive.db")
    holder = sqlite3.connect(path, isolation_level=None, timeout=0)
    holder.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    holder.execute("BEGIN EXCLUSIVE")
    reader = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        with pytest.raises(DatabaseUnavailable):
            asyncio.run(SqliteConnection(reader).fetch(_KEYS))
    finally:
        reader.close()
        holder.execute("ROLLBACK")
        holder.close()
