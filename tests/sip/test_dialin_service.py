"""Admitting dial-in callers (issue 15, service/dialin.py) against real SQLite and PostgreSQL:
the PIN decides among meetings sharing a number, a booked meeting is "not started", maxmembers
is "full", a meeting carried by another node or of a sandbox app is never joined, and an
admitted caller is a `callin` leg whose push says 呼入."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

from telemeeting.config import Settings
from telemeeting.domain.model import INBOUND, LegState, Meeting
from telemeeting.service.changes import ChangeRecorder, Wakeups
from telemeeting.service.dialin import DialIn
from telemeeting.service.directory import Directory
from telemeeting.store.repositories import LIVE_LEGS
from telemeeting.store.unit_of_work import Database
from telemeeting.telephony.dialin import AdmitRequest
from telemeeting.telephony.ivr.machine import Verdict
from telemeeting.wire.request_id import RequestIdGenerator
from tests.servers import migrated_database, new_app

NODE = "media-a"
NOW = 1_800_000_000.0


async def meeting(
    db: Database,
    meid: str,
    pin: str,
    *,
    env: str = "production",
    owner: str = NODE,
    max_members: int = 10,
    book_at: float | None = None,
) -> Meeting:
    app = await new_app(db, env)
    opened = Meeting.open(
        app_id=app.appid,
        meid=meid,
        now=NOW,
        max_members=max_members,
        max_duration=3600,
        book_at=book_at,
        custom_parm="cp",
    )
    opened.dialin, opened.pin = True, pin
    opened.events.clear()
    async with db.unit_of_work() as uow:
        await uow.meetings.add(opened, owner=owner)
    return opened


def dialin(db: Database) -> DialIn:
    settings = Settings()
    recorder = ChangeRecorder.from_settings(settings, Wakeups())
    ids = RequestIdGenerator(ZoneInfo("Asia/Shanghai"))
    return DialIn(db, NODE, recorder, Directory(db), lambda: NOW + 5, ids)


def ask(meid: str, pin: str, caller: str = "13900000001") -> AdmitRequest:
    return AdmitRequest(meid, pin, caller, "4000")


async def test_admission_verdicts(fresh_db: str) -> None:
    async with migrated_database(fresh_db) as db:
        service = dialin(db)
        first = await meeting(db, "5551", "1111")
        second = await meeting(db, "5551", "2222")  # the same number in another app
        await meeting(db, "5552", "3333", book_at=NOW + 600)
        small = await meeting(db, "5553", "4444", max_members=1)
        await meeting(db, "5554", "5555", owner="media-b")
        await meeting(db, "5555", "6666", env="sandbox")

        assert (await service.admit(ask("5551", "9999"))).verdict is Verdict.WRONG
        assert (await service.admit(ask("0000", "1111"))).verdict is Verdict.WRONG
        admitted = await service.admit(ask("5551", "2222"))
        assert admitted.verdict is Verdict.ADMITTED and admitted.meeting_id == second.id
        assert (await service.admit(ask("5552", "3333"))).verdict is Verdict.NOT_STARTED
        assert (await service.admit(ask("5553", "4444"))).verdict is Verdict.ADMITTED
        assert (await service.admit(ask("5553", "4444"))).verdict is Verdict.FULL
        assert (await service.admit(ask("5554", "5555"))).verdict is Verdict.UNAVAILABLE
        assert (await service.admit(ask("5555", "6666"))).verdict is Verdict.WRONG
        refused = await service.admit(ask("5551", "1111"), host_ok=lambda _id: False)
        assert refused.verdict is Verdict.UNAVAILABLE

        async with db.reader() as uow:
            loaded = await uow.meetings.get(second.id, LIVE_LEGS)
            untouched = await uow.meetings.get(first.id, LIVE_LEGS)
            full = await uow.meetings.get(small.id, LIVE_LEGS)
            events = await uow.events.for_meeting(second.id, 0, 10)
        assert loaded is not None and untouched is not None and full is not None
        (leg,) = loaded.legs
        assert leg.id == admitted.leg_id and leg.state is LegState.CALLIN
        assert (leg.phone, leg.caller_id, leg.direction) == ("13900000001", "4000", INBOUND)
        assert leg.custom_parm == "cp" and loaded.live_count == 1
        assert untouched.legs == [] and full.live_count == 1
        (push,) = [json.loads(e.body) for e in events]
        assert (push["state"], push["stateDesc"], push["dsc"]) == ("callin", "呼入", "13900000001")
        assert push["customParm"] == "cp" and push["requestid"] == leg.request_id


async def test_a_guessed_meeting_number_refuses_every_pin_for_a_while(fresh_db: str) -> None:
    from telemeeting.service.dialin import GUESS_LIMIT, GUESS_WINDOW_SECONDS

    async with migrated_database(fresh_db) as db:
        now = [NOW]
        service = DialIn(
            db,
            NODE,
            ChangeRecorder.from_settings(Settings(), Wakeups()),
            Directory(db),
            lambda: now[0],
            RequestIdGenerator(ZoneInfo("Asia/Shanghai")),
        )
        await meeting(db, "6661", "2468")
        await meeting(db, "6662", "1357")
        for guess in range(GUESS_LIMIT):
            assert (await service.admit(ask("6661", f"{guess:04d}"))).verdict is Verdict.WRONG
        assert (await service.admit(ask("6661", "2468"))).verdict is Verdict.WRONG
        assert (await service.admit(ask("6662", "1357"))).verdict is Verdict.ADMITTED
        now[0] += GUESS_WINDOW_SECONDS + 1
        assert (await service.admit(ask("6661", "2468"))).verdict is Verdict.ADMITTED
