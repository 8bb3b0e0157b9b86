"""SQLite on the driver itself: one writer with group commit, readers inline.

Why not aiosqlite: it moves every statement to a worker thread and back, which cost more than
the statements themselves. SQLite statements on a local file take microseconds, so they run on
the event loop; only COMMIT (an fsync with `synchronous=FULL`) goes to a thread.

Group commit: the writes of every request waiting at a moment share one transaction. Each
request runs in its own SAVEPOINT (an error undoes only its own writes), releases it, and is
answered only after the COMMIT that contains it has returned: one `BEGIN IMMEDIATE` and one
fsync for many requests instead of one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from telemeeting.store.connection import Conflict, DatabaseUnavailable, Params, Row
from telemeeting.store.sql import Dialect, Statement

#: How long a writer waits for another process (an operator's CLI command) to release the lock,
#: counted from when the request asked to write (not from when its turn came), so that requests
#: queued behind a locked database all get their answer after this long, not one after another.
LOCK_WAIT_SECONDS = 30.0
_DIALECT = Dialect.SQLITE
_LOCKED = "the SQLite database stayed locked"
#: Primary result codes for "someone else holds the lock": worth waiting for.
_LOCK_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
#: Primary result codes that mean the file cannot be used now, not that the statement is wrong:
#: the lock codes, IOERR (10), FULL (13), CANTOPEN (14), PROTOCOL (15).
_UNAVAILABLE_CODES = _LOCK_CODES | {10, 13, 14, 15}


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def _unavailable(exc: sqlite3.Error, codes: frozenset[int] = _UNAVAILABLE_CODES) -> bool:
    """Whether SQLite refused for want of the file (locked, I/O, full), not for the statement."""
    return isinstance(exc, sqlite3.OperationalError) and _primary_code(exc) in codes


def _translated(exc: sqlite3.Error) -> Exception:
    """The store's exception for a driver error: Conflict, DatabaseUnavailable, or itself."""
    if isinstance(exc, sqlite3.IntegrityError) and (
        "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc)
    ):
        return Conflict(str(exc))
    if _unavailable(exc):
        return DatabaseUnavailable(f"{type(exc).__name__}: {exc}")
    return exc


def _connect(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, cached_statements=512
    )
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")  # an answered request survives power loss
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


class SqliteConnection:
    """The `Connection` interface over one sqlite3 connection; statements run inline."""

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw

    def _run(self, statement: Statement, params: Params | None) -> sqlite3.Cursor:
        try:
            return self.raw.execute(statement.prepared(_DIALECT).text, params or {})
        except sqlite3.Error as exc:
            translated = _translated(exc)
            if translated is exc:
                raise
            raise translated from exc

    async def fetch(self, statement: Statement, params: Params | None = None) -> list[Row]:
        return self._run(statement, params).fetchall()

    async def fetchone(self, statement: Statement, params: Params | None = None) -> Row | None:
        return self._run(statement, params).fetchone()

    async def scalar(self, statement: Statement, params: Params | None = None) -> Any:
        row = self._run(statement, params).fetchone()
        return None if row is None else row[0]

    async def execute(self, statement: Statement, params: Params | None = None) -> int:
        return self._run(statement, params).rowcount

    async def execute_many(self, statement: Statement, rows: Sequence[Params]) -> None:
        try:
            self.raw.executemany(statement.prepared(_DIALECT).text, rows)
        except sqlite3.IntegrityError as exc:
            raise Conflict(str(exc)) from exc
        except sqlite3.Error as exc:
            if not _unavailable(exc):
                raise
            raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc


class _Batch:
    """One open write transaction and the requests whose writes it holds."""

    def __init__(self) -> None:
        self.committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False


class SqliteEngine:
    dialect = _DIALECT

    def __init__(self, path: str, lock_wait: float = LOCK_WAIT_SECONDS) -> None:
        self._path = path
        self._lock_wait = lock_wait
        self._writer = SqliteConnection(_connect(path))
        self._writer.raw.execute("PRAGMA busy_timeout=0")  # we wait on the loop, not in C
        self._turn = asyncio.Lock()  # one request at a time uses the writer
        self._batch: _Batch | None = None
        self._readers: list[SqliteConnection] = []
        self._savepoints = 0

    @contextlib.asynccontextmanager
    async def writer(self) -> AsyncIterator[SqliteConnection]:
        """A request's writes: its own savepoint in the shared transaction; returns after the
        COMMIT that made them durable (or raises if that COMMIT failed). DatabaseUnavailable
        when another process held the write lock for the whole lock wait: nothing was written."""
        deadline = time.monotonic() + self._lock_wait
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for returns the lock, swallowing a
            # cancellation that arrives as it is granted, and a cancelled role then never ends.
            async with asyncio.timeout(self._lock_wait):
                await self._turn.acquire()
        except TimeoutError as exc:  # the request ahead is still waiting for the lock
            raise DatabaseUnavailable(_LOCKED) from exc
        try:
            batch = await self._open_batch(deadline)
            self._savepoints += 1
            name = f"w{self._savepoints}"
            raw = self._writer.raw
            raw.execute(f"SAVEPOINT {name}")
            try:
                yield self._writer
            except BaseException:
                raw.execute(f"ROLLBACK TO {name}")
                raw.execute(f"RELEASE {name}")
                raise
            raw.execute(f"RELEASE {name}")
        finally:
            self._turn.release()
        await asyncio.shield(batch.committed)

    async def _open_batch(self, deadline: float) -> _Batch:
        if self._batch is not None and not self._batch.closed:
            return self._batch
        delay = 0.001
        while True:
            try:
                self._writer.raw.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:  # another process holds the write lock
                if not _unavailable(exc):
                    raise
                if not _unavailable(exc, _LOCK_CODES):  # I/O, disk full: no use waiting
                    raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
                if time.monotonic() > deadline:
                    raise DatabaseUnavailable(_LOCKED) from exc
                await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 0.05)
        batch = self._batch = _Batch()
        asyncio.get_running_loop().create_task(self._commit(batch))
        return batch

    async def _commit(self, batch: _Batch) -> None:
        """Close the batch once the requests ready right now have written, then COMMIT."""
        await asyncio.sleep(0)
        async with self._turn:
            batch.closed = True
            try:
                await asyncio.to_thread(self._writer.raw.execute, "COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._writer.raw.execute("ROLLBACK")
                if not batch.committed.done():  # every request of the batch: none was kept
                    failure = _translated(exc) if isinstance(exc, sqlite3.Error) else exc
                    if failure is not exc:
                        failure.__cause__ = exc
                    batch.committed.set_exception(failure)
                batch.committed.exception()  # retrieved: no "never retrieved" warning
                return
            batch.committed.set_result(None)

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[SqliteConnection]:
        """Reads outside any transaction: each statement sees the last commit (WAL), never
        waits for the writer, and costs no BEGIN and COMMIT. A read that needs one snapshot
        across several rows is one statement (see MeetingRepository.read)."""
        if self._readers:
            connection = self._readers.pop()
        else:
            connection = SqliteConnection(_connect(self._path))
        try:
            yield connection
        finally:
            self._readers.append(connection)

    async def data_version(self) -> int:
        """SQLite's commit counter as the writer sees it: it moves only when another
        connection (another process) commits, never for this process's own commits. Read
        between requests' turns, never while a COMMIT runs in its thread."""
        async with self._turn:
            return int(self._writer.raw.execute("PRAGMA data_version").fetchone()[0])

    async def dispose(self) -> None:
        async with self._turn:
            pass
        if self._batch is not None and not self._batch.closed:
            with contextlib.suppress(BaseException):
                await self._batch.committed
        self._writer.raw.close()
        for connection in self._readers:
            connection.raw.close()
        self._readers.clear()
