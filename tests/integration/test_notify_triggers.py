"""PostgreSQL's triggers (migration 0011) announce new orders and new pushes to every process:
a listener on another connection is woken when a transaction that inserted them commits, not
before, and sandbox events (stored, never pushed) wake no dispatcher."""

from __future__ import annotations

import asyncio
import time

import pytest

from telemeeting.domain.model import Meeting
from telemeeting.store.orders import StoredOrder
from telemeeting.store.outbox import PENDING, STORED
from telemeeting.store.records import StoredEvent
from telemeeting.store.sql import Statement
from telemeeting.store.unit_of_work import ORDERS_CHANNEL, PUSHES_CHANNEL, Database
from tests.servers import new_app

pytestmark = pytest.mark.postgres

WAIT = 2.0


async def _meeting(db: Database) -> Meeting:
    app = await new_app(db)
    meeting = Meeting.open(
        app_id=app.appid, meid="1", now=time.time(), max_members=5, max_duration=60, name="m"
    )
    async with db.unit_of_work() as uow:
        await uow.meetings.add(meeting)
    return meeting


def _event(meeting: Meeting, seq: int, delivery: str) -> StoredEvent:
    return StoredEvent(
        id=f"{seq:032x}",
        meeting_id=meeting.id,
        seq=seq,
        leg_id=None,
        app_id=meeting.app_id,
        kind="MeetingState",
        body="{}",
        created_at=time.time(),
        delivery=delivery,
        attempts=0,
    )


async def test_an_order_insert_wakes_other_connections_at_commit(pg_db: Database) -> None:
    meeting = await _meeting(pg_db)
    woken = asyncio.Event()
    listener = Database(pg_db.url)  # another engine: its own LISTEN connection, like a process
    try:
        await listener.listen(ORDERS_CHANNEL, woken.set)
        async with pg_db.unit_of_work() as uow:
            await uow.orders.add([StoredOrder(0, meeting.id, "hang_up", "{}")], time.time())
            await asyncio.sleep(0.3)
            assert not woken.is_set()  # NOTIFY is delivered at commit, not before
        await asyncio.wait_for(woken.wait(), WAIT)
    finally:
        await listener.dispose()


async def test_only_pushes_due_for_delivery_wake_the_dispatchers(pg_db: Database) -> None:
    meeting = await _meeting(pg_db)
    woken = asyncio.Event()
    listener = Database(pg_db.url)
    try:
        await listener.listen(PUSHES_CHANNEL, woken.set)
        async with pg_db.unit_of_work() as uow:
            await uow.events.add_all([_event(meeting, 1, STORED)], pushed=False)
        await asyncio.sleep(0.5)
        assert not woken.is_set()  # a sandbox event is stored, never pushed
        async with pg_db.unit_of_work() as uow:
            await uow.events.add_all([_event(meeting, 2, PENDING)], pushed=True)
        await asyncio.wait_for(woken.wait(), WAIT)
    finally:
        await listener.dispose()


async def test_the_listen_connection_comes_back_after_its_backend_is_killed(
    pg_db: Database,
) -> None:
    """A PostgreSQL restart or a terminated backend must not leave a process deaf to other
    processes' orders (store/pg_listen.py): it listens again on a new connection."""
    meeting = await _meeting(pg_db)
    woken = asyncio.Event()
    listener = Database(pg_db.url)
    try:
        await listener.listen(ORDERS_CHANNEL, woken.set)
        async with pg_db.unit_of_work() as uow:
            await uow.connection.execute(
                Statement(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid != pg_backend_pid() "
                    "AND query LIKE 'LISTEN%'"
                )
            )
        await asyncio.wait_for(woken.wait(), WAIT)  # back: told to look again
        woken.clear()
        async with pg_db.unit_of_work() as uow:
            await uow.orders.add([StoredOrder(0, meeting.id, "hang_up", "{}")], time.time())
        await asyncio.wait_for(woken.wait(), WAIT)
    finally:
        await listener.dispose()
