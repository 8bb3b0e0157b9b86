"""CDRs, charges and the ledger against real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from telemeeting.config import Settings
from telemeeting.domain.model import EndReason, Invitee, Meeting
from telemeeting.service import admin
from telemeeting.service.billing import Tariff
from telemeeting.service.changes import Wakeups, record_change
from telemeeting.store.cdrs import NewCdr
from telemeeting.store.records import App
from telemeeting.store.sql import Statement
from telemeeting.store.unit_of_work import Database, UnitOfWork

TARIFF = Tariff(60, Decimal("0.06"))


@pytest.fixture
async def db(fresh_db: str) -> AsyncIterator[Database]:
    database = Database(fresh_db)
    await database.migrate()
    yield database
    await database.dispose()


def _cdr(sid: str, leg: str) -> NewCdr:
    return NewCdr(sid, "app", "production", "m", leg, "r" + leg, "138", "{}", 0.0, time.time())


async def test_an_accounts_cdr_ids_are_visible_in_commit_order(db: Database) -> None:
    """A writer holding the account's lock keeps the next one from taking an id until it has
    committed, so a reader paging by id never skips a CDR that commits late."""
    sid = (await admin.create_account(db)).sid
    written = asyncio.Event()
    release = asyncio.Event()
    second_done = asyncio.Event()

    async def first() -> None:
        async with db.unit_of_work() as uow:
            await uow.ledger.lock(sid)
            await uow.cdrs.add([_cdr(sid, "1")])
            written.set()
            await release.wait()

    async def second() -> None:
        await written.wait()
        async with db.unit_of_work() as uow:
            await uow.ledger.lock(sid)
            await uow.cdrs.add([_cdr(sid, "2")])
        second_done.set()

    tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
    try:
        await written.wait()
        await asyncio.sleep(0.3)
        assert not second_done.is_set()  # waiting for the first to commit
        async with db.reader() as uow:
            assert await uow.cdrs.after(sid, "production", 10) == []
    finally:
        release.set()
        await asyncio.gather(*tasks)
    async with db.reader() as uow:
        page = await uow.cdrs.after(sid, "production", 10)
        assert page is not None
        assert [cdr.id for cdr in page] == sorted(cdr.id for cdr in page)
        assert len(page) == 2
        after_first = await uow.cdrs.after(sid, "production", 10, "r1")
        assert after_first is not None and len(after_first) == 1
        assert await uow.cdrs.after(sid, "production", 10, "unknown") is None


async def _meeting_with_a_leg(db: Database, balance: float) -> tuple[str, str, str, App]:
    """A billed account's production meeting with one leg dialled 130 s ago."""
    account = await admin.create_account(db, balance=balance)
    app = await admin.create_app(db, account_sid=account.sid, env="production")
    now = time.time()
    meeting = Meeting.open(
        app_id=app.appid, meid="1", now=now - 130, max_members=10, max_duration=3600
    )
    [leg] = meeting.invite(
        [Invitee("13800138000")], request_id="r", custom_parm="", caller_id="", now=now - 130
    )
    async with db.unit_of_work() as uow:
        await uow.meetings.add(meeting)
    return account.sid, meeting.id, leg.id, app


async def _end_the_call(uow: UnitOfWork, meeting_id: str, leg_id: str, app: App) -> None:
    """The leg was answered 121 s ago and ends now: 3 started minutes, 0.18."""
    meeting = await uow.meetings.get(meeting_id)
    assert meeting is not None
    now = time.time()
    meeting.leg_answered(leg_id, now - 121)
    meeting.leg_ended(leg_id, EndReason.NORMAL, now)
    await record_change(uow, meeting, app, Settings().zone, Wakeups(), tariff=TARIFF)


async def test_a_leg_end_writes_its_cdr_and_debit_together(db: Database) -> None:
    sid, meeting_id, leg_id, app = await _meeting_with_a_leg(db, balance=1)
    async with db.unit_of_work() as uow:
        await _end_the_call(uow, meeting_id, leg_id, app)
    async with db.reader() as uow:
        assert await uow.cdrs.charges(sid) == (1, 0.18)
        [cdr] = await uow.cdrs.of_request(sid, "production", "r")
        assert json.loads(cdr.body)["oriamount"] == 0.18
        assert json.loads(cdr.body)["duration"] == 121
        assert (await uow.ledger.totals(sid))["call"] == (1, -0.18)
        [debit, _opening] = await uow.ledger.entries(sid)
        assert (debit.reference, debit.actor, debit.balance_after) == (leg_id, app.appid, 0.82)
        account = await uow.accounts.get(sid)
        assert account is not None and account.balance == 0.82


async def test_a_failed_change_keeps_neither_cdr_nor_debit(db: Database) -> None:
    sid, meeting_id, leg_id, app = await _meeting_with_a_leg(db, balance=1)
    with pytest.raises(RuntimeError):
        async with db.unit_of_work() as uow:
            await _end_the_call(uow, meeting_id, leg_id, app)
            raise RuntimeError("the transaction fails after the charge")
    async with db.reader() as uow:
        assert await uow.cdrs.charges(sid) == (0, 0.0)
        assert "call" not in await uow.ledger.totals(sid)
        account = await uow.accounts.get(sid)
        assert account is not None and account.balance == 1.0


async def test_unlocked_cdrs_get_their_ids_in_commit_order(db: Database) -> None:
    """A CDR written without the account's lock (an unbilled change) is numbered when its
    transaction commits: one that committed later never has a smaller id, and a reader paging
    by id never sees a later id before an earlier one is visible."""
    sid = (await admin.create_account(db)).sid
    written = asyncio.Event()
    release = asyncio.Event()

    async def slow() -> None:  # inserts first, commits last
        async with db.unit_of_work() as uow:
            await uow.cdrs.add([_cdr(sid, "1")])
            written.set()
            await release.wait()

    async def quick() -> None:
        await written.wait()
        async with db.unit_of_work() as uow:
            await uow.cdrs.add([_cdr(sid, "2")])

    first = asyncio.create_task(slow())
    if db.dialect.value == "sqlite":  # one writer: the second waits for the first's commit
        release.set()
        await asyncio.gather(first, quick())
        expected = ["r1", "r2"]
    else:
        await quick()
        async with db.reader() as uow:
            seen = await uow.cdrs.after(sid, "production", 10, None)
        assert seen is not None and [json.loads(c.body) for c in seen] == [{}]
        release.set()
        await first
        expected = ["r2", "r1"]
    async with db.reader() as uow:
        rows = await uow.connection.fetch(
            Statement("SELECT requestid FROM cdrs WHERE account_sid = :sid ORDER BY id"),
            {"sid": sid},
        )
    assert [row[0] for row in rows] == expected
