"""One database transaction, with the repositories bound to it, and the database behind it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from functools import cached_property
from typing import Protocol

from telemeeting.store import database
from telemeeting.store.cdrs import CdrRepository
from telemeeting.store.connection import Connection
from telemeeting.store.idempotency import IdempotencyRepository
from telemeeting.store.ledger import LedgerRepository
from telemeeting.store.nodes import NodeRepository
from telemeeting.store.orders import OrderRepository
from telemeeting.store.outbox import OutboxRepository
from telemeeting.store.postgres import PostgresEngine
from telemeeting.store.rate_demand import RateDemandRepository
from telemeeting.store.repositories import (
    AccountRepository,
    AppRepository,
    EventRepository,
    MeetingRepository,
)
from telemeeting.store.spans import SpanRepository
from telemeeting.store.sql import Dialect
from telemeeting.store.sqlite import SqliteEngine
from telemeeting.store.sqlite_watch import CommitWatcher

#: Channels woken on PostgreSQL when a transaction stored carrier orders or pushes: by the
#: triggers of migration 0011, which spell the names out too.
ORDERS_CHANNEL = "telemeeting_orders"
PUSHES_CHANNEL = "telemeeting_pushes"


class _Engine(Protocol):
    dialect: Dialect

    def writer(self) -> contextlib.AbstractAsyncContextManager[Connection]: ...

    def reader(self) -> contextlib.AbstractAsyncContextManager[Connection]: ...

    async def dispose(self) -> None: ...


class UnitOfWork:
    """The repositories of one transaction, and what to do once it has committed."""

    def __init__(self, connection: Connection, dialect: Dialect) -> None:
        self.connection = connection
        self.dialect = dialect
        self._after_commit: list[Callable[[], None]] = []

    # Repositories are made on first use: most requests need one or two of them.
    @cached_property
    def accounts(self) -> AccountRepository:
        return AccountRepository(self.connection)

    @cached_property
    def apps(self) -> AppRepository:
        return AppRepository(self.connection)

    @cached_property
    def meetings(self) -> MeetingRepository:
        return MeetingRepository(self.connection, self.dialect)

    @cached_property
    def events(self) -> EventRepository:
        return EventRepository(self.connection)

    @cached_property
    def outbox(self) -> OutboxRepository:
        return OutboxRepository(self.connection, self.dialect)

    @cached_property
    def orders(self) -> OrderRepository:
        return OrderRepository(self.connection)

    @cached_property
    def nodes(self) -> NodeRepository:
        return NodeRepository(self.connection)

    @cached_property
    def spans(self) -> SpanRepository:
        return SpanRepository(self.connection)

    @cached_property
    def rate_demand(self) -> RateDemandRepository:
        return RateDemandRepository(self.connection)

    @cached_property
    def idempotency(self) -> IdempotencyRepository:
        return IdempotencyRepository(self.connection, self.dialect)

    @cached_property
    def cdrs(self) -> CdrRepository:
        return CdrRepository(self.connection)

    @cached_property
    def ledger(self) -> LedgerRepository:
        return LedgerRepository(self.connection)

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Run `hook` once the transaction has committed (never after a rollback)."""
        if hook not in self._after_commit:
            self._after_commit.append(hook)


class Database:
    """The store: units of work for writes, readers for consistent reads."""

    def __init__(self, url: str, pool_size: int = 32) -> None:
        self.url = database.normalize_url(url)
        self._engine: SqliteEngine | PostgresEngine
        self._watcher: CommitWatcher | None = None
        if database.is_sqlite(self.url):
            path = database.sqlite_path(self.url)
            engine = self._engine = SqliteEngine(path)
            if path not in ("", ":memory:"):  # another process can share only a file
                self._watcher = CommitWatcher(engine.data_version)
        else:
            self._engine = PostgresEngine(self.url, pool_size)
        self.dialect = self._engine.dialect

    @contextlib.asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """`async with db.unit_of_work() as uow:` commits on success, rolls back on error."""
        async with self._engine.writer() as connection:
            uow = UnitOfWork(connection, self.dialect)
            yield uow
        for hook in uow._after_commit:
            hook()

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[UnitOfWork]:
        """Reads that never wait for writers; each statement sees the last commit."""
        async with self._engine.reader() as connection:
            yield UnitOfWork(connection, self.dialect)

    async def listen(self, channel: str, wake: Callable[[], None]) -> None:
        """Wake on commits of other processes: NOTIFY on `channel` (PostgreSQL), any commit to
        the file (SQLite, store/sqlite_watch.py); in-process commits also wake by their hooks."""
        if isinstance(self._engine, PostgresEngine):
            await self._engine.listen(channel, wake)
        elif self._watcher is not None:
            self._watcher.add(wake)

    async def migrate(self) -> None:
        await database.migrate(self.url)

    async def dispose(self) -> None:
        if self._watcher is not None:
            await self._watcher.close()
        await self._engine.dispose()
