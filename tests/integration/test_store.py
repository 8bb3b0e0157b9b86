"""The store against real SQLite and PostgreSQL: migrations, round trips, locks, sequences."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import inspect

from telemeeting.domain.model import EndReason, Invitee, Meeting, MeetingState
from telemeeting.service import admin
from telemeeting.store.connection import Conflict
from telemeeting.store.database import create_engine, migrate
from telemeeting.store.records import StoredEvent
from telemeeting.store.repositories import ALL_LEGS, NO_LEGS, legs_with_ids, live_legs_of
from telemeeting.store.unit_of_work import Database
from tests.servers import new_app


async def _app(db: Database) -> str:
    return (await new_app(db, "sandbox")).appid


def _meeting(appid: str, meid: str = "100") -> Meeting:
    return Meeting.open(
        app_id=appid, meid=meid, now=time.time(), max_members=10, max_duration=3600, name="会议"
    )


async def test_migrations_create_every_table_and_are_idempotent(db: Database) -> None:
    await migrate(db.url)  # second run is a no-op
    engine = create_engine(db.url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    await engine.dispose()
    expected = {"accounts", "apps", "meetings", "legs", "events", "orders", "nodes"}
    assert expected | {"alembic_version"} <= names


async def test_meeting_round_trip_saves_only_changes(db: Database) -> None:
    appid = await _app(db)
    meeting = _meeting(appid)
    legs = meeting.invite(
        [Invitee("13800138000", "张三"), Invitee("01053889900,12#")],
        request_id="r1",
        custom_parm="c",
        caller_id="01053189990",
        now=time.time(),
    )
    async with db.unit_of_work() as uow:
        await uow.meetings.add(meeting)
    async with db.unit_of_work() as uow:
        loaded = await uow.meetings.find(appid, "100")
        assert loaded is not None
        assert [leg.phone for leg in loaded.legs] == ["13800138000", "01053889900,12#"]
        assert loaded.legs[0].name == "张三" and loaded.state is MeetingState.ACTIVE
        loaded.leg_answered(legs[0].id, time.time())
        loaded.leg_ended(legs[1].id, EndReason.BUSY, time.time())
        await uow.meetings.save(loaded)
    async with db.unit_of_work() as uow:
        live = await uow.meetings.get(meeting.id)  # for changes: the live legs only
        assert live is not None and [leg.id for leg in live.legs] == [legs[0].id]
        assert live.ever_joined and live.live_count == 1
        only = await uow.meetings.get(meeting.id, legs_with_ids([legs[1].id]))
        assert only is not None and [leg.id for leg in only.legs] == [legs[1].id]
        busy = await uow.meetings.get(meeting.id, live_legs_of(["13800138000", "1"]))
        assert busy is not None and [leg.id for leg in busy.legs] == [legs[0].id]
        bare = await uow.meetings.get(meeting.id, NO_LEGS)
        assert bare is not None and bare.legs == []
        again = await uow.meetings.find(appid, "100", ALL_LEGS, lock=False)
        assert again is not None and again.live_count == 1
        assert again.legs[0].answered_at is not None
        assert again.legs[1].state_desc == "未应答|用户忙"


async def test_open_room_number_is_unique_per_app(db: Database) -> None:
    appid = await _app(db)
    async with db.unit_of_work() as uow:
        await uow.meetings.add(_meeting(appid, "42"))
    with pytest.raises(Conflict):
        async with db.unit_of_work() as uow:
            await uow.meetings.add(_meeting(appid, "42"))
    other = await _app(db)
    async with db.unit_of_work() as uow:  # another app may use the same number
        await uow.meetings.add(_meeting(other, "42"))


async def test_concurrent_writers_get_consecutive_sequence_numbers(db: Database) -> None:
    appid = await _app(db)
    meeting = _meeting(appid)
    async with db.unit_of_work() as uow:
        await uow.meetings.add(meeting)

    async def append(n: int) -> None:
        async with db.unit_of_work() as uow:
            loaded = await uow.meetings.get(meeting.id)  # row lock (BEGIN IMMEDIATE on SQLite)
            assert loaded is not None
            first = uow.meetings.reserve_seqs(loaded.id, 2)
            await uow.events.add_all(
                [
                    StoredEvent(
                        id=f"{n:030d}{offset:02d}",
                        meeting_id=loaded.id,
                        seq=first + offset,
                        leg_id=None,
                        app_id=appid,
                        kind="MeetingState",
                        body="{}",
                        created_at=time.time(),
                        delivery="stored",
                        attempts=0,
                    )
                    for offset in range(2)
                ],
                pushed=False,
            )
            await uow.meetings.save(loaded)

    await asyncio.gather(*(append(n) for n in range(10)))
    async with db.unit_of_work() as uow:
        events = await uow.events.for_meeting(meeting.id, after=0, limit=100)
    assert [e.seq for e in events] == list(range(1, 21))


def test_schema_head_constant_matches_the_migrations() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from telemeeting.store.database import MIGRATIONS, SCHEMA_HEAD

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_HEAD


async def test_migrate_reports_the_head(db: Database) -> None:
    from telemeeting.store.database import SCHEMA_HEAD, schema_version

    assert await schema_version(db.url) == SCHEMA_HEAD


async def test_outbox_claims_first_of_each_leg_with_true_attempt_numbers(db: Database) -> None:
    appid = await _app(db)
    await admin.update_app(db, appid, callback_url="http://127.0.0.1:9/cb")
    meeting = _meeting(appid)
    async with db.unit_of_work() as uow:
        await uow.meetings.add(meeting)
        now = time.time()
        await uow.events.add_all(
            [
                StoredEvent(
                    id=f"e{seq}",
                    meeting_id=meeting.id,
                    seq=seq,
                    leg_id=leg,
                    app_id=appid,
                    kind="CallState",
                    body="{}",
                    created_at=now,
                    delivery="pending",
                    attempts=0,
                )
                for seq, leg in ((1, "a"), (2, "a"), (3, "b"))
            ],
            pushed=True,
        )
        uow.meetings.reserve_seqs(meeting.id, 3)
        await uow.meetings.save(meeting)
    async with db.unit_of_work() as uow:
        first = await uow.outbox.claim(time.time(), lease=30, limit=10)
    assert sorted(d.event_id for d in first) == ["e1", "e3"]  # e2 waits for e1 (same leg)
    assert [d.attempt for d in first] == [1, 1]
    by_id = {d.event_id: d for d in first}
    async with db.unit_of_work() as uow:  # leased: nothing more is due
        assert await uow.outbox.claim(time.time(), lease=30, limit=10) == []
        await uow.outbox.retry_at(by_id["e1"], time.time() - 1, "HTTP 500")
        await uow.outbox.delivered(by_id["e3"], time.time())
    async with db.unit_of_work() as uow:
        again = await uow.outbox.claim(time.time(), lease=30, limit=10)
    assert [(d.event_id, d.attempt) for d in again] == [("e1", 2)]
    async with db.unit_of_work() as uow:  # the stale first attempt finishing late changes nothing
        await uow.outbox.dead(by_id["e1"], "late failure")
        await uow.outbox.delivered(again[0], time.time())
        states = {e.id: e.delivery for e in await uow.outbox.list(appid, None)}
    assert states == {"e1": "delivered", "e2": "pending", "e3": "delivered"}
