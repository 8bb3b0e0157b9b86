"""PostgreSQL on asyncpg directly: prepared statements, a pool sized to the admission bound.

asyncpg prepares each statement once per connection and caches it, so a request costs its
round trips and nothing more; the pool's reset query is skipped because every connection goes
back to the pool outside any transaction and we never change session state.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import asyncpg

from telemeeting.store.connection import Conflict, DatabaseUnavailable, Params, Row
from telemeeting.store.sql import Dialect, Statement

_DIALECT = Dialect.POSTGRES


def asyncpg_dsn(url: str) -> str:
    """`postgresql+asyncpg://…` and `postgres://…` as asyncpg takes them."""
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


class _QuietConnection(asyncpg.Connection):  # type: ignore[misc]
    """No reset query on release: we never leave session state behind."""

    def get_reset_query(self) -> str:
        return ""


class PostgresConnection:
    """The `Connection` interface over one asyncpg connection."""

    def __init__(self, raw: asyncpg.Connection) -> None:
        self.raw = raw

    async def fetch(self, statement: Statement, params: Params | None = None) -> list[Row]:
        prepared = statement.prepared(_DIALECT)
        with _translated():
            return list(await self.raw.fetch(prepared.text, *prepared.positional(params)))

    async def fetchone(self, statement: Statement, params: Params | None = None) -> Row | None:
        prepared = statement.prepared(_DIALECT)
        with _translated():
            return await self.raw.fetchrow(prepared.text, *prepared.positional(params))

    async def scalar(self, statement: Statement, params: Params | None = None) -> Any:
        prepared = statement.prepared(_DIALECT)
        with _translated():
            return await self.raw.fetchval(prepared.text, *prepared.positional(params))

    async def execute(self, statement: Statement, params: Params | None = None) -> int:
        prepared = statement.prepared(_DIALECT)
        with _translated():
            status = await self.raw.execute(prepared.text, *prepared.positional(params))
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def execute_many(self, statement: Statement, rows: Sequence[Params]) -> None:
        prepared = statement.prepared(_DIALECT)
        with _translated():
            await self.raw.executemany(prepared.text, [prepared.positional(row) for row in rows])


@contextlib.contextmanager
def _translated() -> Any:
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(str(exc)) from exc
    except (OSError, asyncpg.CannotConnectNowError, asyncpg.ConnectionDoesNotExistError) as exc:
        raise DatabaseUnavailable(str(exc)) from exc


class PostgresEngine:
    dialect = _DIALECT

    def __init__(self, url: str, pool_size: int) -> None:
        self._dsn = asyncpg_dsn(url)
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            try:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=1,
                    max_size=self._pool_size,
                    statement_cache_size=1024,
                    connection_class=_QuietConnection,
                )
            except (OSError, asyncpg.PostgresError) as exc:
                raise DatabaseUnavailable(str(exc)) from exc
        return self._pool

    @contextlib.asynccontextmanager
    async def writer(self) -> AsyncIterator[PostgresConnection]:
        pool = await self._get_pool()
        async with pool.acquire() as raw, raw.transaction():
            yield PostgresConnection(raw)

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[PostgresConnection]:
        """Reads in autocommit: each statement its own snapshot, no BEGIN/COMMIT round trips.
        A read that needs one snapshot across several rows is one statement."""
        pool = await self._get_pool()
        async with pool.acquire() as raw:
            yield PostgresConnection(raw)

    async def listen(self, channel: str, wake: Callable[[], None]) -> None:
        """Call `wake` whenever someone commits a `pg_notify(channel)` (on one own connection)."""
        if self._listener is None:
            try:
                self._listener = await asyncpg.connect(self._dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                raise DatabaseUnavailable(str(exc)) from exc
        await self._listener.add_listener(channel, lambda *_: wake())

    async def dispose(self) -> None:
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
