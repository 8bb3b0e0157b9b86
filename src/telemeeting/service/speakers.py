"""Speaker events (issue 14, extension): the media node reports who is talking in a meeting
with `speakerevents` "1"; each report becomes a `MeetingState` push

    {"meid": …, "state": "speakers", "reason": "", "timestamp": …, "speakers": [phones]}

stored and delivered like every other push (and replayed by queryMeetingEvents), and the
talkers are kept for queryMeeting's `speaking`. The detector already limits reports to two a
second per meeting (telephony/media/vad.py), so each is simply one short transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from telemeeting.domain.model import MeetingState
from telemeeting.service.changes import ChangeRecorder
from telemeeting.store.outbox import PENDING, STORED
from telemeeting.store.records import StoredEvent
from telemeeting.store.repositories import legs_with_ids
from telemeeting.store.speakers import SpeakerRepository
from telemeeting.store.unit_of_work import Database
from telemeeting.telephony.driver import SpeakersReport
from telemeeting.wire import callbacks
from telemeeting.wire.envelope import dump
from telemeeting.wire.environments import PRODUCTION
from telemeeting.wire.times import format_wire_time

SPEAKERS_STATE = "speakers"


class SpeakerEvents:
    def __init__(
        self, db: Database, recorder: ChangeRecorder, clock: Callable[[], float]
    ) -> None:
        self._db = db
        self._recorder = recorder
        self._clock = clock

    async def record(self, report: SpeakersReport) -> None:
        async with self._db.unit_of_work() as uow:
            meeting = await uow.meetings.get(report.meeting_id, legs_with_ids(report.leg_ids))
            if meeting is None or meeting.state is not MeetingState.ACTIVE:
                return
            phones = [leg.phone for leg in meeting.legs if leg.id in report.leg_ids]
            app = await uow.apps.get(meeting.app_id)
            body = callbacks.meeting_state_body(
                meid=meeting.meid,
                state=SPEAKERS_STATE,
                reason="",
                timestamp=format_wire_time(report.at, self._recorder.zone),
            )
            body["speakers"] = phones
            pushed = bool(app and app.env == PRODUCTION and app.callback_url)
            seq = uow.meetings.reserve_seqs(meeting.id, 1)
            event = StoredEvent(
                id=secrets.token_hex(16),
                meeting_id=meeting.id,
                seq=seq,
                leg_id=None,
                app_id=meeting.app_id,
                kind=callbacks.MEETING_STATE,
                body=dump(body).decode("utf-8"),
                created_at=report.at,
                delivery=PENDING if pushed else STORED,
                attempts=0,
            )
            await uow.events.add_all([event], pushed)
            if pushed:  # other processes: the database's trigger NOTIFYs (migration 0011)
                uow.after_commit(self._recorder.wakeups.pushes)
            await SpeakerRepository(uow.connection).set(meeting.id, report.leg_ids, report.at)
            await uow.meetings.save(meeting)
