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
import structlog

from telemeeting.store.connection import Conflict, DatabaseUnavailable, Params, Row
from telemeeting.store.pg_listen import Listener
from telemeeting.store.sql import Dialect, Statement

_DIALECT = Dialect.POSTGRES
log = structlog.get_logger(__name__)


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
        with _translated(self.raw):
            return list(await self.raw.fetch(prepared.text, *prepared.positional(params)))

    async def fetchone(self, statement: Statement, params: Params | None = None) -> Row | None:
        prepared = statement.prepared(_DIALECT)
        with _translated(self.raw):
            return await self.raw.fetchrow(prepared.text, *prepared.positional(params))

    async def scalar(self, statement: Statement, params: Params | None = None) -> Any:
        prepared = statement.prepared(_DIALECT)
        with _translated(self.raw):
            return await self.raw.fetchval(prepared.text, *prepared.positional(params))

    async def execute(self, statement: Statement, params: Params | None = None) -> int:
        prepared = statement.prepared(_DIALECT)
        with _translated(self.raw):
            status = await self.raw.execute(prepared.text, *prepared.positional(params))
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def execute_many(self, statement: Statement, rows: Sequence[Params]) -> None:
        prepared = statement.prepared(_DIALECT)
        with _translated(self.raw):
            await self.raw.executemany(prepared.text, [prepared.positional(row) for row in rows])


#: asyncpg's InterfaceError for an argument it cannot encode (not SQLSTATE 22, asyncpg.DataError).
_ArgumentError = asyncpg.exceptions._base.DataError

#: What the driver raises when the server cannot be reached or dropped the connection: the
#: socket failed, SQLSTATE class 08 (connection exception) or 57 (operator intervention:
#: pg_terminate_backend, shutdown, restart), too many connections. asyncpg's own
#: InternalClientError ("cannot switch to state …") is what a pooled connection whose backend
#: was terminated while idle raises on its next statement, before the close is noticed.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.InternalClientError,
)


def _is_unavailable(exc: BaseException, raw: asyncpg.Connection | None) -> bool:
    """Whether `exc` means the database (or this connection to it) is gone, not a bug of ours.
    An InterfaceError counts only once its connection is closed: it is also what a misuse
    raises (and DataError, a bad argument, is one)."""
    if isinstance(exc, _UNAVAILABLE):
        return True
    if isinstance(exc, asyncpg.InterfaceError) and not isinstance(exc, _ArgumentError):
        return raw is None or _closed(raw)
    return False


def _closed(raw: asyncpg.Connection) -> bool:
    """Whether the connection is closed. A pooled one whose socket closed is detached from its
    proxy at once, and the proxy then raises InterfaceError for every call: closed too."""
    try:
        return bool(raw.is_closed())
    except asyncpg.InterfaceError:
        return True


@contextlib.contextmanager
def _translated(raw: asyncpg.Connection | None = None) -> Any:
    """Driver errors as the store's: Conflict, DatabaseUnavailable (the API's retryable
    answer), anything else unchanged. A connection left in a state asyncpg cannot use is
    terminated, so that the pool opens a new one instead of handing it out again."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(str(exc)) from exc
    except Exception as exc:
        if not _is_unavailable(exc, raw):
            raise
        if raw is not None and isinstance(exc, asyncpg.exceptions.InternalClientError):
            with contextlib.suppress(asyncpg.InterfaceError):  # already detached: closed
                raw.terminate()
        raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc


class PostgresEngine:
    dialect = _DIALECT

    def __init__(self, url: str, pool_size: int) -> None:
        self._dsn = asyncpg_dsn(url)
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._listener = Listener(self._dsn)

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
    async def _acquired(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; acquiring one that cannot be opened is DatabaseUnavailable, and
        giving it back never fails the request (the pool drops a broken one by itself)."""
        pool = await self._get_pool()
        with _translated():
            raw = await pool.acquire()
        try:
            yield raw
        finally:
            try:
                await pool.release(raw)
            except Exception as exc:  # asyncpg has terminated it; a new one comes next time
                log.info("store.release_failed", error=f"{type(exc).__name__}: {exc}")

    @contextlib.asynccontextmanager
    async def writer(self) -> AsyncIterator[PostgresConnection]:
        """One transaction. BEGIN and COMMIT are translated like statements: a connection lost
        before the COMMIT has returned raises DatabaseUnavailable and PostgreSQL rolls the whole
        transaction back (only a loss during the COMMIT itself leaves its outcome unknown)."""
        async with self._acquired() as raw:
            transaction = raw.transaction()
            with _translated(raw):
                await transaction.start()
            try:
                yield PostgresConnection(raw)
            except BaseException:
                await self._rollback(raw, transaction)
                raise
            with _translated(raw):
                await transaction.commit()

    @staticmethod
    async def _rollback(raw: asyncpg.Connection, transaction: Any) -> None:
        """Undo after an error; on a connection that is gone, there is nothing left to undo
        (the server rolled back when it lost it), and the error already raised is the answer."""
        try:
            await transaction.rollback()
        except Exception as exc:
            if not _is_unavailable(exc, raw):
                raise

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[PostgresConnection]:
        """Reads in autocommit: each statement its own snapshot, no BEGIN/COMMIT round trips.
        A read that needs one snapshot across several rows is one statement."""
        async with self._acquired() as raw:
            yield PostgresConnection(raw)

    async def listen(self, channel: str, wake: Callable[[], None]) -> None:
        """Call `wake` whenever someone commits a `pg_notify(channel)` (on one own connection,
        opened again when it is lost: store/pg_listen.py)."""
        try:
            await self._listener.add(channel, wake)
        except (OSError, asyncpg.PostgresError) as exc:
            raise DatabaseUnavailable(str(exc)) from exc

    async def dispose(self) -> None:
        await self._listener.close()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
