"""The console's listings on SQLite and PostgreSQL: scopes, filters, paging."""

from __future__ import annotations

import time

from telemeeting.domain.model import Meeting
from telemeeting.store.cdrs import NewCdr
from telemeeting.store.console import HOLDER, AuditEntry, AuditRepository
from telemeeting.store.console_reads import CdrFilter, ConsoleReads, EventFilter, MeetingFilter
from telemeeting.store.records import StoredEvent
from telemeeting.store.unit_of_work import Database
from tests.servers import new_app


async def _tenant(db: Database, meetings: int) -> tuple[str, str]:
    app = await new_app(db)
    now = time.time()
    for index in range(meetings):
        meeting = Meeting.open(
            app_id=app.appid,
            meid=f"{100 + index}",
            now=now + index,
            max_members=10,
            max_duration=3600,
            name=f"会议{index}",
        )
        async with db.unit_of_work() as uow:
            await uow.meetings.add(meeting)
            event = StoredEvent(
                f"e{app.appid[:8]}{index}",
                meeting.id,
                1,
                None,
                app.appid,
                "MeetingState",
                "{}",
                now,
                "dead" if index == 0 else "pending",
                3,
            )
            await uow.events.add_all([event], pushed=True)
            uow.meetings.reserve_seqs(meeting.id, 1)
            await uow.meetings.save(meeting)
            body = '{"called": "138", "stateDesc": "未应答|用户忙"}'
            await uow.cdrs.add(
                [
                    NewCdr(
                        app.account_sid,
                        app.appid,
                        "production",
                        meeting.id,
                        f"l{meeting.id[:30]}",
                        f"r{index}",
                        "138",
                        body,
                        0.0,
                        now,
                    )
                ]
            )
    return app.account_sid, app.appid


async def test_listings_are_scoped_filtered_and_paged(db: Database) -> None:
    mine, my_app = await _tenant(db, 3)
    theirs, _ = await _tenant(db, 1)
    async with db.reader() as uow:
        reads = ConsoleReads(uow.connection)
        overview = await reads.overview(mine)
        assert (overview.live_meetings, overview.pushes_dead, overview.pushes_pending) == (3, 1, 2)
        everyone = await reads.overview("")
        assert everyone.live_meetings == 4

        page = await reads.meetings(mine, limit=2)
        assert len(page.rows) == 2 and page.more
        assert [row["name"] for row in page.rows] == ["会议2", "会议1"]
        rest = await reads.meetings(mine, offset=2, limit=2)
        assert [row["name"] for row in rest.rows] == ["会议0"] and not rest.more
        assert (await reads.meetings(mine, MeetingFilter(state="ended"))).rows == []
        of_my_app = MeetingFilter(env="production", app_id=my_app)
        assert len((await reads.meetings(mine, of_my_app)).rows) == 3
        assert (await reads.meetings(mine, MeetingFilter(since=time.time() + 3600))).rows == []
        assert len((await reads.meetings("")).rows) == 4

        place = await reads.meeting_place(page.rows[0]["id"])
        assert place is not None and place["account_sid"] == mine
        assert await reads.meeting_place("nope") is None

        dead = await reads.events(mine, EventFilter(state="dead"))
        assert len(dead.rows) == 1 and dead.rows[0]["account_sid"] == mine
        assert (await reads.events(theirs, EventFilter(event_id=dead.rows[0]["id"]))).rows == []

        cdrs = await reads.cdrs(mine, CdrFilter(called="138"))
        assert len(cdrs.rows) == 3 and "用户忙" in cdrs.rows[0]["body"]
        assert (await reads.cdrs(theirs, CdrFilter(app_id=my_app))).rows == []
        assert [app["appid"] for app in await reads.apps(mine)] == [my_app]
        assert len((await reads.accounts()).rows) == 2

    async with db.unit_of_work() as uow:
        audit = AuditRepository(uow.connection)
        await audit.record(AuditEntry(time.time(), HOLDER, mine, mine, "meeting.end", "m", "{}"))
        await audit.record(AuditEntry(time.time(), HOLDER, theirs, theirs, "login", theirs))
    async with db.reader() as uow:
        audit = AuditRepository(uow.connection)
        assert [a.action for a in await audit.recent(mine)] == ["meeting.end"]
        assert len(await audit.recent("")) == 2
