"""The store tests' databases, migrated: `db` on each kind (SQLite and PostgreSQL, from the
session's `fresh_db`), `pg_db` on PostgreSQL alone, for what only PostgreSQL does (its
triggers, concurrent row locks)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from telemeeting.store.unit_of_work import Database
from tests.servers import create_pg_database, drop_pg_database, migrated_database


@pytest.fixture
async def db(fresh_db: str) -> AsyncIterator[Database]:
    async with migrated_database(fresh_db) as database:
        yield database


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture
async def pg_db(pg_url: str) -> AsyncIterator[Database]:
    async with migrated_database(pg_url) as database:
        yield database
