"""Speaker events (issue 14, extension): the media node reports who is talking in a meeting
with `speakerevents` "1"; each report becomes a `MeetingState` push

    {"meid": …, "state": "speakers", "reason": "", "timestamp": …, "speakers": [phones]}

stored and delivered like every other push (and replayed by queryMeetingEvents), and the
talkers are kept for queryMeeting's `speaking`. The detector already limits reports to two a
second per meeting (telephony/media/vad.py), so each is simply one short transaction.

A meeting that spans servers (issue 16) has each server report its own members' talkers (its
driver merges its workers'). A report replaces only the reporting server's part of the
meeting's talkers: the others' (by `legs.node`, "" the owner's) are kept while their legs are
live, under the meeting's row lock, so the pushes and `speaking` name everyone talking on every
server, and a report that leaves the union as it was pushes nothing (two servers reporting
different sets do not flap it).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Set

from telemeeting.domain.model import Leg, MeetingState
from telemeeting.service.changes import ChangeRecorder
from telemeeting.store.outbox import PENDING, STORED
from telemeeting.store.records import StoredEvent
from telemeeting.store.repositories import legs_with_ids
from telemeeting.store.speakers import SpeakerRepository
from telemeeting.store.unit_of_work import Database, UnitOfWork
from telemeeting.telephony.driver import SpeakersReport
from telemeeting.wire import callbacks
from telemeeting.wire.envelope import dump
from telemeeting.wire.environments import PRODUCTION
from telemeeting.wire.times import format_wire_time

SPEAKERS_STATE = "speakers"


class SpeakerEvents:
    def __init__(
        self,
        db: Database,
        recorder: ChangeRecorder,
        clock: Callable[[], float],
        node_id: str = "",
    ) -> None:
        self._db = db
        self._recorder = recorder
        self._clock = clock
        #: This server: the legs it carries are those its reports speak for.
        self._node_id = node_id

    async def record(self, report: SpeakersReport, server: str | None = None) -> None:
        """Record a server's talkers (`server`: this one unless given; a server that died is
        reported for with none by the sweep that ends its legs, service/spans.py)."""
        server = self._node_id if server is None else server
        async with self._db.unit_of_work() as uow:
            meeting = await uow.meetings.get(report.meeting_id, legs_with_ids(report.leg_ids))
            if meeting is None or meeting.state is not MeetingState.ACTIVE:
                return
            speakers = SpeakerRepository(uow.connection)
            before = await speakers.talking(meeting.id) or frozenset()
            legs = [leg for leg in meeting.legs if leg.id in report.leg_ids]
            others = before - set(report.leg_ids)
            legs += await self._others_talking(uow, meeting.id, others, server)
            talking = tuple(leg.id for leg in legs)
            if frozenset(talking) == before:
                return
            phones = [leg.phone for leg in legs]
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
            await speakers.set(meeting.id, talking, report.at)
            await uow.meetings.save(meeting)

    async def _others_talking(
        self, uow: UnitOfWork, meeting_id: str, leg_ids: Set[str], server: str
    ) -> list[Leg]:
        """Of the legs last said to be talking and not in this report, the live ones a server
        other than the reporting `server` carries (their server's reports speak for them).
        Read only when there are some: a meeting on one server whose talkers only change costs
        one load more when someone stops talking."""
        if not leg_ids:
            return []
        meeting = await uow.meetings.get(meeting_id, legs_with_ids(sorted(leg_ids)))
        if meeting is None:
            return []
        owns = uow.meetings.owner_of(meeting_id) == server

        def elsewhere(leg_id: str) -> bool:
            node = uow.meetings.node_of_leg(leg_id)
            return node != server if node else not owns

        return [leg for leg in meeting.legs if leg.live and elsewhere(leg.id)]
