"""One database transaction, with the repositories bound to it."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from telemeeting.store.database import READ_ONLY
from telemeeting.store.idempotency import IdempotencyRepository
from telemeeting.store.outbox import OutboxRepository
from telemeeting.store.repositories import (
    AccountRepository,
    AppRepository,
    EventRepository,
    MeetingRepository,
)


class UnitOfWork:
    """`async with uow:` opens a transaction; it commits on success and rolls back on error."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._sessions()
        await self.session.begin()
        self.accounts = AccountRepository(self.session)
        self.apps = AppRepository(self.session)
        self.meetings = MeetingRepository(self.session)
        self.events = EventRepository(self.session)
        self.outbox = OutboxRepository(self.session)
        self.idempotency = IdempotencyRepository(self.session)
        self._after_commit: list[Callable[[], None]] = []
        return self

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Run `hook` once the transaction has committed (never after a rollback)."""
        if hook not in self._after_commit:
            self._after_commit.append(hook)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                await self.session.commit()
            else:
                await self.session.rollback()
        finally:
            await self.session.close()
        if exc_type is None:
            for hook in self._after_commit:
                hook()


class Database:
    """The engine and a factory of units of work over it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self._readers = async_sessionmaker(
            engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False, autoflush=False
        )

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self._sessions)

    def reader(self) -> UnitOfWork:
        """A transaction that only reads: on SQLite it does not wait for the write lock."""
        return UnitOfWork(self._readers)

    async def dispose(self) -> None:
        await self.engine.dispose()
