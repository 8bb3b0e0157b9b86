"""Vacuuming the tables whose rows churn, on PostgreSQL, when autovacuum has not.

Carrier orders are inserted and deleted by the thousand, legs and meetings updated several times
each, pushes updated as they are delivered. Every delete and non-HOT update leaves a dead row
and dead index entries that only VACUUM reclaims. With autovacuum off (or behind), the media
role's order claim read them all: measured on the test server (autovacuum off), a claim took
1.8 ms with 10,000 orders deleted and 58 ms with 80,000, visiting 16,500 dead heap pages through
`ix_orders_meeting`; the soak deletes 20,000 orders a minute. The clock role therefore vacuums
these tables itself once their dead rows pass autovacuum's own kind of threshold; where
autovacuum keeps up, the count stays under it and this does nothing.
"""

from __future__ import annotations

from telemeeting.store.sql import Statement
from telemeeting.store.unit_of_work import Database

#: Our tables with deletes or frequent updates (the others only grow).
CHURNED = (
    "orders",
    "cdrs",  # each CDR is renumbered at commit on PostgreSQL (migration 0015)
    "legs",
    "meetings",
    "events",
    "nodes",
    "rate_demand",
    "idempotency_keys",
    "console_sessions",
    "speakers",
)
#: Vacuum a table once its dead rows exceed FLOOR + SHARE × its live rows (autovacuum's default
#: is 50 + 0.2 × live, checked every minute).
FLOOR = 1000
SHARE = 0.1

_DUE = Statement(
    "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() "
    f"AND relname IN ({', '.join(repr(t) for t in CHURNED)}) "
    "AND n_dead_tup > :floor + :share * n_live_tup ORDER BY n_dead_tup DESC"
)


class DeadRowSweeper:
    """Runs VACUUM (on an autocommit connection: it cannot run in a transaction)."""

    def __init__(self, db: Database, floor: int = FLOOR, share: float = SHARE) -> None:
        self._db = db
        self._floor = floor
        self._share = share

    async def sweep(self) -> list[str]:
        """Vacuum (and analyze) every churned table past the threshold; their names."""
        async with self._db.reader() as uow:
            params = {"floor": self._floor, "share": self._share}
            due = [str(row[0]) for row in await uow.connection.fetch(_DUE, params)]
            for table in due:  # names from the fixed list above, never from data
                await uow.connection.execute(Statement(f"VACUUM (ANALYZE) {table}"))
        return due
