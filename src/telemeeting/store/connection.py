"""The small interface every store backend offers: run a prepared statement, get rows back.

Repositories speak only this; `sqlite.py` and `postgres.py` implement it on the drivers
themselves (sqlite3, asyncpg), because the request path cannot afford an ORM or a thread hop
per statement (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from telemeeting.store.sql import Statement

#: One result row: positional and by column name (sqlite3.Row and asyncpg.Record both are).
Row = Any
Params = Mapping[str, Any]


class DatabaseUnavailable(Exception):
    """The database cannot be reached or refused the connection; the request may be retried."""


class Conflict(Exception):
    """A unique constraint refused the write (another request got there first)."""


class Connection(Protocol):
    """A connection inside one transaction (or none, for the autocommit reads)."""

    async def fetch(self, statement: Statement, params: Params | None = None) -> list[Row]: ...

    async def fetchone(self, statement: Statement, params: Params | None = None) -> Row | None: ...

    async def scalar(self, statement: Statement, params: Params | None = None) -> Any: ...

    async def execute(self, statement: Statement, params: Params | None = None) -> int:
        """Run a write; the number of rows it touched."""
        ...

    async def execute_many(self, statement: Statement, rows: Sequence[Params]) -> None: ...


def as_dict(row: Row) -> dict[str, Any]:
    """A row as a dict (sqlite3.Row and asyncpg.Record both iterate over values, not keys)."""
    return dict(zip(row.keys(), tuple(row), strict=True))
