"""The clock role's VACUUM of churned tables on PostgreSQL (store/vacuum.py), for servers whose
autovacuum is off or behind (like the test server's). PostgreSQL only: SQLite has no dead rows
to reclaim this way."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from telemeeting.store.postgres import asyncpg_dsn
from telemeeting.store.unit_of_work import Database
from telemeeting.store.vacuum import DeadRowSweeper


async def _dead_orders(dsn: str) -> tuple[int, object]:
    connection = await asyncpg.connect(dsn)
    try:
        row = await connection.fetchrow(
            "SELECT n_dead_tup, last_vacuum FROM pg_stat_user_tables WHERE relname = 'orders'"
        )
        assert row is not None
        return int(row[0]), row[1]
    finally:
        await connection.close()


async def test_orders_deleted_by_the_thousand_are_vacuumed_and_few_are_left_alone(
    pg_db: Database, pg_url: str
) -> None:
    dsn = asyncpg_dsn(pg_url)
    sweeper = DeadRowSweeper(pg_db, floor=1000, share=0.1)
    connection = await asyncpg.connect(dsn)
    try:
        insert = (
            "INSERT INTO orders (meeting_id, kind, body, created_at) "
            "SELECT 'm' || g, 'dial', '{}', 0 FROM generate_series(1, $1) g"
        )
        await connection.execute(insert, 500)
        await connection.execute("DELETE FROM orders")
        await connection.execute("SELECT pg_stat_force_next_flush()")
    finally:
        await connection.close()
    deadline = time.monotonic() + 10
    while (await _dead_orders(dsn))[0] < 500 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert await sweeper.sweep() == []  # 500 dead rows: under the floor

    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(insert, 3000)
        await connection.execute("DELETE FROM orders")
        await connection.execute("SELECT pg_stat_force_next_flush()")
    finally:
        await connection.close()
    while (await _dead_orders(dsn))[0] < 3500 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert await sweeper.sweep() == ["orders"]
    dead, last_vacuum = await _dead_orders(dsn)
    while last_vacuum is None and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        dead, last_vacuum = await _dead_orders(dsn)
    assert last_vacuum is not None and dead == 0
    assert await sweeper.sweep() == []
