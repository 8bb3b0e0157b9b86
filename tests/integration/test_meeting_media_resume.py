"""A meeting's in-call media settings applied again without the request that asked for them
(service/meeting_media.py), on real SQLite and PostgreSQL: a booked meeting started by the clock
under a changed `[meetings] beep`, and a media node taking over a meeting whose recording the
dead node never started. The orders the new node claims are carried out by a real
`MediaControl`, so what is checked is what the node would do."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from telemeeting.config import Settings, load_settings
from telemeeting.domain.model import Invitee, Meeting
from telemeeting.service import admin, meeting_media
from telemeeting.service.acceptance import Acceptance
from telemeeting.service.calls import CallRecords
from telemeeting.service.changes import ChangeRecorder, Wakeups, dial_orders
from telemeeting.service.clock import MeetingClock
from telemeeting.service.directory import Directory
from telemeeting.service.meetings import MeetingService
from telemeeting.service.placement import Placement
from telemeeting.store.recordings import RecordingRepository
from telemeeting.store.unit_of_work import Database
from telemeeting.telephony.media.conference import Conference
from telemeeting.telephony.media.control import MediaControl
from telemeeting.telephony.orders import MEDIA_ORDERS, ConfigureMeeting, Order, decode
from telemeeting.wire.actions import parse_create_meeting


async def _claimed(db: Database, node: str) -> list[Order]:
    async with db.unit_of_work() as uow:
        stored = await uow.orders.claim(node, 100)
    return [decode(s.kind, s.body) for s in stored]


async def test_a_booked_meetings_explicit_beep_outlives_a_changed_default(
    db: Database, tmp_path: Path
) -> None:
    """beep "3" asked for at booking is kept even though it equalled `[meetings] beep` then:
    the server may restart with another default before the meeting starts."""
    account = await admin.create_account(db, balance=100)
    app = await admin.create_app(db, account_sid=account.sid, env="production")
    booked_under = load_settings(meetings={"beep": 3}, recordings={"directory": str(tmp_path)})
    started_under = load_settings(meetings={"beep": 0}, recordings={"directory": str(tmp_path)})
    now = time.time()

    def recorder(settings: Settings) -> ChangeRecorder:
        return ChangeRecorder.from_settings(settings, Wakeups())

    placement = Placement(db, "n1", True, 10, lambda: now)
    service = MeetingService(db, booked_under, lambda: now, placement, recorder(booked_under))
    booktime = datetime.fromtimestamp(now + 60, booked_under.zone).strftime("%Y%m%d%H%M%S")
    request = parse_create_meeting(
        {"bookmeeting": "1", "booktime": booktime, "beep": "3",
         "parties": [{"phone": "13800138000"}]}
    )  # fmt: skip
    await service.create_meeting(app, request, Acceptance("r1"))

    later = now + 120  # the booked time has come, after a restart with `beep = 0`
    placement = Placement(db, "n1", True, 10, lambda: later)
    clock = MeetingClock(db, started_under, lambda: later, placement, recorder(started_under))
    assert await clock.run_due() == 1
    configured = [o for o in await _claimed(db, "n1") if isinstance(o, ConfigureMeeting)]
    assert [o.beep for o in configured] == [3]


async def test_a_recording_the_dead_node_never_started_gives_way_to_the_new_segment(
    db: Database, tmp_path: Path
) -> None:
    """The dead node never claimed the meeting's StartRecording (it died, or hung until its
    lease ran out, right after the order was written). The new owner claims that stale order
    and then the take-over's: the new segment is the one its mixer must write, or the segment
    queryMeeting and later CDRs point to would never get a file."""
    account = await admin.create_account(db, balance=100)
    app = await admin.create_app(db, account_sid=account.sid, env="production")
    settings = load_settings(recordings={"directory": str(tmp_path)})
    now = time.time()
    meeting = Meeting.open(app_id=app.appid, meid="1", now=now, max_members=10, max_duration=3600)
    meeting.invite([Invitee("13800138000")], request_id="r1", custom_parm="", caller_id="", now=now)
    media = meeting_media.requested(parse_create_meeting({"record": "1"}), 3)
    async with db.unit_of_work() as uow:
        await uow.meetings.add(meeting, owner="dead")
        await meeting_media.keep(uow, meeting, media, 3)
        orders = await meeting_media.starting_orders(uow, meeting, media, settings, app.env, now)
        orders += dial_orders(meeting, meeting.legs, app.env)
        await ChangeRecorder.from_settings(settings, Wakeups()).record(
            uow, meeting, app, orders, now
        )

    records = CallRecords(
        db, lambda: now + 12, ChangeRecorder.from_settings(settings, Wakeups()), Directory(db),
        settings,
    )  # fmt: skip
    assert await records.take_over(meeting.id, "dead", "new")
    async with db.reader() as uow:
        rows = await RecordingRepository(uow.connection).for_meeting(meeting.id)
    (running,) = [r for r in rows if r.stopped_at is None]
    assert len(rows) == 2

    control = MediaControl(Conference())
    for order in await _claimed(db, "new"):
        if isinstance(order, MEDIA_ORDERS):
            control.apply(order)
    room = control.conference.media[meeting.id]
    try:
        assert room.recording_id == running.id
    finally:
        control.conference.stop_recording(meeting.id)


async def test_a_node_restarted_with_its_id_gets_its_meetings_media_again(
    db: Database, tmp_path: Path
) -> None:
    """A restart (same `[server] node_id`) is a take-over by the node itself: a meeting that
    stays active (a party still to be dialled) gets its settings and a new recording segment,
    or the restarted mixer would carry it unrecorded while the recording it lists runs on."""
    account = await admin.create_account(db, balance=100)
    app = await admin.create_app(db, account_sid=account.sid, env="production")
    settings = load_settings(recordings={"directory": str(tmp_path)})
    recorder = ChangeRecorder.from_settings(settings, Wakeups())
    now = time.time()
    meeting = Meeting.open(app_id=app.appid, meid="1", now=now, max_members=10, max_duration=3600)
    first, second = meeting.invite(
        [Invitee("13800138000"), Invitee("13800138001")],
        request_id="r1",
        custom_parm="",
        caller_id="",
        now=now,
    )
    media = meeting_media.requested(parse_create_meeting({"record": "1"}), 3)
    async with db.unit_of_work() as uow:
        await uow.meetings.add(meeting, owner="n1")
        await meeting_media.keep(uow, meeting, media, 3)
        orders = await meeting_media.starting_orders(uow, meeting, media, settings, app.env, now)
        await recorder.record(uow, meeting, app, [*orders, *dial_orders(meeting, [first], app.env)])
    await _claimed(db, "n1")  # the process before the restart carried those out
    async with db.unit_of_work() as uow:
        loaded = await uow.meetings.get(meeting.id)
        assert loaded is not None
        loaded.leg_answered(first.id, now + 1)
        await recorder.record(uow, loaded, app, dial_orders(loaded, [second], app.env), now + 1)

    records = CallRecords(db, lambda: now + 5, recorder, Directory(db), settings)
    assert await records.end_lost_calls("n1") == 1
    async with db.reader() as uow:
        rows = await RecordingRepository(uow.connection).for_meeting(meeting.id)
    (running,) = [r for r in rows if r.stopped_at is None]
    control = MediaControl(Conference())
    claimed = await _claimed(db, "n1")
    for order in claimed:
        if isinstance(order, MEDIA_ORDERS):
            control.apply(order)
    assert any(isinstance(o, ConfigureMeeting) for o in claimed)
    room = control.conference.media.get(meeting.id)
    try:
        assert len(rows) == 2 and room is not None and room.recording_id == running.id
    finally:
        control.conference.stop_recording(meeting.id)
