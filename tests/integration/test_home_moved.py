"""The home media process of a meeting spanning the workers of one server died (issue 16): the
service goes on recording in a new segment on the new home (`CallRecords.home_moved`), on real
SQLite and PostgreSQL. The orders the server claims are carried out by a real `MediaControl`, so
what is checked is what the new home would do. (The whole path with real phones and a killed
worker: tests/sip/test_workers_failover.py.)"""

from __future__ import annotations

import time
from pathlib import Path

from telemeeting.config import load_settings
from telemeeting.domain.model import Invitee, Meeting
from telemeeting.service import admin, meeting_media
from telemeeting.service.calls import CallRecords
from telemeeting.service.changes import ChangeRecorder, Wakeups, dial_orders
from telemeeting.service.directory import Directory
from telemeeting.store.recordings import RecordingRepository
from telemeeting.store.unit_of_work import Database
from telemeeting.telephony.media.conference import Conference
from telemeeting.telephony.media.control import MediaControl
from telemeeting.telephony.orders import (
    MEDIA_ORDERS,
    Order,
    StartRecording,
    StopRecording,
    decode,
)
from telemeeting.wire.actions import parse_create_meeting


async def _claimed(db: Database, node: str) -> list[Order]:
    async with db.unit_of_work() as uow:
        stored = await uow.orders.claim(node, 100)
    return [decode(s.kind, s.body) for s in stored]


async def _meeting(db: Database, tmp_path: Path, record: bool) -> tuple[Meeting, CallRecords]:
    """An active meeting owned by "n1" with two answered legs, its starting orders carried out."""
    account = await admin.create_account(db, balance=100)
    app = await admin.create_app(db, account_sid=account.sid, env="production")
    settings = load_settings(recordings={"directory": str(tmp_path)})
    recorder = ChangeRecorder.from_settings(settings, Wakeups())
    now = time.time()
    meeting = Meeting.open(app_id=app.appid, meid="1", now=now, max_members=10, max_duration=3600)
    legs = meeting.invite(
        [Invitee("13800138000"), Invitee("13800138001")],
        request_id="r1",
        custom_parm="",
        caller_id="",
        now=now,
    )
    for leg in legs:
        meeting.leg_answered(leg.id, now + 1)
    media = meeting_media.requested(parse_create_meeting({"record": "1" if record else "0"}), 3)
    async with db.unit_of_work() as uow:
        await uow.meetings.add(meeting, owner="n1")
        await meeting_media.keep(uow, meeting, media, 3)
        orders = await meeting_media.starting_orders(uow, meeting, media, settings, app.env, now)
        await recorder.record(uow, meeting, app, [*orders, *dial_orders(meeting, legs, app.env)])
    await _claimed(db, "n1")  # carried out by the home that then dies
    records = CallRecords(db, lambda: now + 30, recorder, Directory(db), settings)
    return meeting, records


async def test_the_recording_goes_on_in_a_new_segment_on_the_new_home(
    db: Database, tmp_path: Path
) -> None:
    meeting, records = await _meeting(db, tmp_path, record=True)
    async with db.reader() as uow:
        (first,) = await RecordingRepository(uow.connection).for_meeting(meeting.id)

    await records.home_moved(meeting.id)

    async with db.reader() as uow:
        rows = await RecordingRepository(uow.connection).for_meeting(meeting.id)
        assert (await uow.meetings.get(meeting.id)) is not None
    old = next(r for r in rows if r.id == first.id)
    (new,) = [r for r in rows if r.id != first.id]
    assert old.stopped_at == new.started_at  # no overlap, no gap in what queryMeeting lists
    assert new.stopped_at is None
    control = MediaControl(Conference())  # the new home, which knows no recording yet
    for order in await _claimed(db, "n1"):
        if isinstance(order, MEDIA_ORDERS):
            control.apply(order)
    try:
        assert control.conference.media[meeting.id].recording_id == new.id
    finally:
        control.conference.stop_recording(meeting.id)


async def test_a_meeting_that_was_not_recorded_gets_no_recording(
    db: Database, tmp_path: Path
) -> None:
    meeting, records = await _meeting(db, tmp_path, record=False)
    await records.home_moved(meeting.id)
    await records.home_moved("no-such-meeting")  # ended and gone meanwhile: nothing happens
    async with db.reader() as uow:
        assert await RecordingRepository(uow.connection).for_meeting(meeting.id) == []
    claimed = await _claimed(db, "n1")  # the settings again, harmless; no recording
    assert not [o for o in claimed if isinstance(o, StartRecording | StopRecording)], claimed
