"""Retention of ended meetings (store/retention.py, service/retention.py) on real SQLite and
PostgreSQL: what goes, what stays (CDRs, the ledger, anything still needed), in batches."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from telemeeting.cli import cli
from telemeeting.config import Settings
from telemeeting.domain.model import EndReason, Invitee, Meeting
from telemeeting.service import admin
from telemeeting.service.billing import Tariff
from telemeeting.service.changes import Wakeups, record_change
from telemeeting.service.retention import DAY, Retention, RetentionPolicy
from telemeeting.store.orders import StoredOrder
from telemeeting.store.recordings import RecordingRepository, StoredRecording
from telemeeting.store.records import App
from telemeeting.store.sql import Statement
from telemeeting.store.unit_of_work import Database

TARIFF = Tariff(60, Decimal("0.06"))
#: Every table retention touches, and the two it must never touch.
TABLES = ("meetings", "legs", "events", "orders", "cdrs", "ledger", "recordings")


async def _ended_meeting(db: Database, app: App, meid: str, ended_at: float) -> str:
    """A meeting with one answered leg, ended at `ended_at`: its legs, pushes, a CDR and a
    charge as the server writes them, and an order the carrier never claimed."""
    start = ended_at - 200
    meeting = Meeting.open(
        app_id=app.appid, meid=meid, now=start, max_members=10, max_duration=3600
    )
    [leg] = meeting.invite(
        [Invitee("13800138000")], request_id="r" + meid, custom_parm="", caller_id="", now=start
    )
    async with db.unit_of_work() as uow:
        await uow.meetings.add(meeting)
    async with db.unit_of_work() as uow:
        loaded = await uow.meetings.get(meeting.id)
        assert loaded is not None
        loaded.leg_answered(leg.id, start + 10)
        loaded.leg_ended(leg.id, EndReason.NORMAL, ended_at)  # its last leg: it ends, empty
        assert loaded.ended_at == ended_at
        await record_change(uow, loaded, app, Settings().zone, Wakeups(), tariff=TARIFF)
        await uow.orders.add([StoredOrder(0, meeting.id, "hangup", "{}")], ended_at)
    return meeting.id


async def _counts(db: Database) -> dict[str, int]:
    async with db.reader() as uow:
        return {
            table: int(await uow.connection.scalar(Statement(f"SELECT COUNT(*) FROM {table}")))
            for table in TABLES
        }


async def _meeting_ids(db: Database) -> set[str]:
    async with db.reader() as uow:
        rows = await uow.connection.fetch(Statement("SELECT id FROM meetings"))
    return {str(row[0]) for row in rows}


async def test_old_ended_meetings_go_and_cdrs_ledger_and_the_still_needed_stay(
    db: Database,
) -> None:
    account = await admin.create_account(db, balance=100)
    app = await admin.create_app(db, account_sid=account.sid, env="production")
    pushing = await admin.create_app(
        db, account_sid=account.sid, env="production", callback_url="http://127.0.0.1:9/cb"
    )
    now = time.time()
    old = await _ended_meeting(db, app, "1", now - 40 * DAY)
    recent = await _ended_meeting(db, app, "2", now - 20 * DAY)
    # Its pushes are still pending delivery: kept until they are delivered or dead.
    undelivered = await _ended_meeting(db, pushing, "3", now - 40 * DAY)
    # Its recording is still kept (`recordings purge` removes it at its own retention).
    recorded = await _ended_meeting(db, app, "4", now - 40 * DAY)
    async with db.unit_of_work() as uow:
        recording = StoredRecording("r" * 32, recorded, app.appid, now - 40 * DAY, None, "/x")
        await RecordingRepository(uow.connection).add(recording)
    live = Meeting.open(app_id=app.appid, meid="5", now=now, max_members=10, max_duration=3600)
    async with db.unit_of_work() as uow:
        await uow.meetings.add(live)
    before = await _counts(db)
    assert before["cdrs"] == 4 and before["events"] > 0 and before["orders"] == 4

    retention = Retention(db, RetentionPolicy(days=30, batch=100), time.time)
    assert await retention.pending() == 1
    pruned = await retention.prune()

    assert (pruned.meetings, pruned.legs, pruned.orders) == (1, 1, 1)
    assert pruned.events == before["events"] // 4  # each ended meeting pushed the same
    remaining = await _meeting_ids(db)
    assert remaining == {recent, undelivered, recorded, live.id} and old not in remaining
    after = await _counts(db)
    assert after["cdrs"] == before["cdrs"] and after["ledger"] == before["ledger"]
    assert after["legs"] == before["legs"] - 1 and after["orders"] == before["orders"] - 1
    async with db.reader() as uow:  # the pruned meeting's CDR is still pulled
        assert len(await uow.cdrs.of_request(account.sid, "production", "r1")) == 1
    assert await retention.pending() == 0
    assert (await retention.prune()).rows == 0


async def test_pruning_goes_in_batches_and_reports_each(db: Database) -> None:
    account = await admin.create_account(db)
    app = await admin.create_app(db, account_sid=account.sid, env="sandbox")
    now = time.time()
    for n in range(7):
        await _ended_meeting(db, app, str(10 + n), now - 3 * DAY - n)
    batches: list[int] = []
    retention = Retention(db, RetentionPolicy(days=2, batch=3), time.time)
    total = await retention.prune(lambda batch: batches.append(batch.meetings))
    assert batches == [3, 3, 1]
    assert total.meetings == 7 and total.legs == 7
    assert await _meeting_ids(db) == set()


async def test_zero_days_keeps_everything(db: Database) -> None:
    account = await admin.create_account(db)
    app = await admin.create_app(db, account_sid=account.sid, env="sandbox")
    await _ended_meeting(db, app, "1", time.time() - 3000 * DAY)
    retention = Retention(db, RetentionPolicy(days=0, batch=10), time.time)
    assert await retention.pending() == 0
    assert (await retention.prune()).rows == 0
    assert len(await _meeting_ids(db)) == 1


def test_the_prune_command_shows_and_returns_what_it_removed(fresh_db: str, tmp_path: Path) -> None:
    async def setup() -> None:
        async with _migrated(fresh_db) as db:
            account = await admin.create_account(db)
            app = await admin.create_app(db, account_sid=account.sid, env="sandbox")
            for n in range(3):
                await _ended_meeting(db, app, str(n), time.time() - 10 * DAY)
            await _ended_meeting(db, app, "9", time.time() - DAY)

    asyncio.run(setup())
    runner = CliRunner()
    dry = runner.invoke(cli, ["prune", "--db", fresh_db, "--days", "5", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output) == {"days": 5.0, "prunable": 3, "dry_run": True}
    shown = runner.invoke(cli, ["prune", "--db", fresh_db, "--days", "5", "--batch", "2"])
    assert shown.exit_code == 0, shown.output
    assert "3 meeting(s)" in shown.output
    again = runner.invoke(cli, ["prune", "--db", fresh_db, "--days", "0.5", "--json"])
    assert again.exit_code == 0, again.output
    result = json.loads(again.output)
    assert (result["meetings"], result["legs"]) == (1, 1)
    bad = runner.invoke(cli, ["prune", "--db", fresh_db, "--days", "-1"])
    assert bad.exit_code != 0


class _migrated:
    """A migrated Database for a synchronous test's setup."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)

    async def __aenter__(self) -> Database:
        await self.db.migrate()
        return self.db

    async def __aexit__(self, *_exc: object) -> None:
        await self.db.dispose()
