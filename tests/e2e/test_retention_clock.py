"""The clock role of a real server prunes ended meetings ([retention], service/retention.py):
a destroyed meeting is gone after the retention period, its CDR stays, a live one stays."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from telemeeting.store.sql import Statement
from telemeeting.store.unit_of_work import Database
from tests.servers import Api, start_server

#: Ended meetings are kept about 1.7 s; the clock prunes every half second.
RETENTION = {
    "TELEMEETING_RETENTION_ENDED_MEETINGS_DAYS": "0.00002",
    "TELEMEETING_RETENTION_INTERVAL_SECONDS": "0.5",
}


def _count(url: str, table: str) -> int:
    async def work() -> int:
        db = Database(url)
        try:
            async with db.reader() as uow:
                return int(await uow.connection.scalar(Statement(f"SELECT COUNT(*) FROM {table}")))
        finally:
            await db.dispose()

    return asyncio.run(work())


def test_the_clock_prunes_an_ended_meeting_and_keeps_its_cdr(fresh_db: str, tmp_path: Path) -> None:
    server = start_server(fresh_db, tmp_path, env=RETENTION)
    try:
        api = Api(server, server.new_tenant())
        ended = api.create_meeting(parties=[{"phone": "13800138000"}])
        live = api.create_meeting(parties=[{"phone": "13800138001"}])
        api.wait_for(ended, lambda m: m["members"] and m["members"][0]["state"] == "answer")
        assert api.post({"action": "destroyMeeting", "confid": ended}).code == "0"
        assert _count(fresh_db, "meetings") == 2
        deadline = time.monotonic() + 20
        while _count(fresh_db, "meetings") > 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _count(fresh_db, "meetings") == 1
        found = api.post({"action": "queryMeeting", "confid": ended}, func_url="MeetingQuery.wx")
        assert found.code == "-300"  # as for a meeting that never was
        assert api.query(live)["meid"] == live
        assert _count(fresh_db, "cdrs") == 1  # the destroyed meeting's leg: kept for the pull
    finally:
        server.stop()
