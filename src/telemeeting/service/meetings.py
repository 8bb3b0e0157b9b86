"""The meeting use cases. Each runs in one transaction; orders go to the carrier after commit.

State changes and the pushes they cause are written together (the outbox), so a crash after
commit loses nothing; a crash before commit means the request was never accepted.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError

from telemeeting.config import Settings
from telemeeting.domain import errors
from telemeeting.domain.model import (
    CloseReason,
    EndReason,
    Invitee,
    Leg,
    LegState,
    Meeting,
    MeetingState,
)
from telemeeting.service.acceptance import Acceptance
from telemeeting.service.pushes import pushes_for
from telemeeting.store.outbox import PENDING, STORED
from telemeeting.store.records import App, StoredEvent
from telemeeting.store.unit_of_work import Database, UnitOfWork
from telemeeting.telephony.driver import DialOrder, Driver, LegReport, Progress
from telemeeting.wire import actions
from telemeeting.wire.phones import parse_phone
from telemeeting.wire.times import format_wire_time, parse_wall_clock

log = structlog.get_logger(__name__)

#: At most this many queued carrier reports are recorded in one go.
REPORT_BATCH = 500
#: Pauses between tries of recording a meeting's reports after a database error.
REPORT_RETRY_DELAYS = (0.2, 1.0, 5.0)


@dataclass(frozen=True)
class _Orders:
    """What to tell the carrier once the transaction has committed."""

    env: str
    dial: list[Leg]
    hang_up: list[Leg]
    end: bool


class MeetingService:
    def __init__(
        self,
        db: Database,
        driver: Driver,
        settings: Settings,
        clock: Callable[[], float],
    ) -> None:
        self._db = db
        self._driver = driver
        self._settings = settings
        self._clock = clock
        self._zone = settings.zone
        self._reports: asyncio.Queue[LegReport] = asyncio.Queue()
        #: Called after a commit that stored pushes; the dispatcher sets it to wake itself.
        self.pushes_waiting: Callable[[], None] = lambda: None
        driver.attach(self.on_report)

    # ---- use cases ------------------------------------------------------------------------

    async def create_meeting(
        self, app: App, request: actions.CreateMeeting, accept: Acceptance
    ) -> str:
        request_id = accept.request_id
        now = self._clock()
        book_at = None
        if request.book:
            book_at = parse_wall_clock(request.book_time or "", self._zone)
            if book_at is None:
                raise errors.InvalidRequest("booktime is not yyyyMMddHHmmss or yyyy-MM-dd HH:mm:ss")
        try:
            async with self._db.unit_of_work() as uow:
                meid = request.confid or await self._free_room_number(uow, app.appid)
                if await uow.meetings.room_taken(app.appid, meid):
                    raise errors.InvalidRequest(f"confid {meid} is in use")
                meeting = Meeting.open(
                    app_id=app.appid,
                    meid=meid,
                    now=now,
                    max_members=request.max_members or self._settings.meetings.default_max_members,
                    max_duration=self._settings.meetings.max_duration_seconds,
                    name=request.meeting_name,
                    book_at=book_at,
                    creator=request.creator.wire if request.creator else "",
                    srcclid=request.srcclid,
                    dstclid=request.dstclid,
                    shownumber=request.shownumber,
                    custom_parm=request.custom_parm,
                )
                if request.creator:
                    meeting.invite(
                        [Invitee(request.creator.wire)],
                        request_id=request_id,
                        custom_parm=request.custom_parm,
                        caller_id=request.srcclid or request.shownumber or app.caller_id,
                        now=now,
                    )
                meeting.invite(
                    [Invitee(p.phone.wire, p.name) for p in request.parties],
                    request_id=request_id,
                    custom_parm=request.custom_parm,
                    caller_id=self._party_caller_id(meeting, app),
                    now=now,
                )
                await uow.meetings.add(meeting, owner=self._settings.server.node)
                await self._persist(uow, meeting, app)
                await accept.record(uow, meid=meeting.meid)
        except IntegrityError as exc:  # another request took the room number meanwhile
            raise errors.InvalidRequest("confid is in use") from exc
        if meeting.state is MeetingState.ACTIVE:
            await self._carry_out(meeting, _Orders(app.env, meeting.legs, [], False))
        return meeting.meid

    async def invite(self, app: App, request: actions.Invite, accept: Acceptance) -> None:
        now = self._clock()
        async with self._db.unit_of_work() as uow:
            meeting = await self._find(uow, app, request.confid)
            legs = meeting.invite(
                [Invitee(p.phone.wire, p.name) for p in request.parties],
                request_id=accept.request_id,
                custom_parm=request.custom_parm,
                caller_id=self._party_caller_id(meeting, app),
                now=now,
            )
            await self._persist(uow, meeting, app)
            await accept.record(uow)
        if meeting.state is MeetingState.ACTIVE:
            await self._carry_out(meeting, _Orders(app.env, legs, [], False))

    async def destroy_meeting(
        self, app: App, request: actions.MeetingRef, accept: Acceptance
    ) -> None:
        now = self._clock()
        async with self._db.unit_of_work() as uow:
            meeting = await self._find(uow, app, request.confid)
            was_booked = meeting.state is MeetingState.BOOKED
            reason = CloseReason.CANCELLED if was_booked else CloseReason.DESTROYED
            legs = meeting.close(reason, now)
            await self._persist(uow, meeting, app)
            await accept.record(uow)
        await self._carry_out(meeting, _Orders(app.env, [], legs, True))

    async def query_meeting(self, app: App, request: actions.MeetingRef) -> dict[str, Any]:
        async with self._db.reader() as uow:
            meeting = await uow.meetings.find(app.appid, request.confid, lock=False)
        if meeting is None:
            raise errors.MeetingNotFound(request.confid)
        return self._describe(meeting)

    async def set_muted(
        self, app: App, request: actions.MemberRef, muted: bool, accept: Acceptance
    ) -> None:
        async with self._db.unit_of_work() as uow:
            meeting = await self._find(uow, app, request.confid)
            leg = meeting.set_muted(request.phone, muted)
            await uow.meetings.save(meeting)
            await accept.record(uow)
        await self._safely(self._driver.set_muted(meeting.id, leg.id, muted), leg)

    async def kick_member(self, app: App, request: actions.MemberRef, accept: Acceptance) -> None:
        now = self._clock()
        async with self._db.unit_of_work() as uow:
            meeting = await self._find(uow, app, request.confid)
            leg = meeting.kick(request.phone, now)
            await self._persist(uow, meeting, app)
            await accept.record(uow)
        await self._carry_out(
            meeting, _Orders(app.env, [], [leg], meeting.state is MeetingState.ENDED)
        )

    async def query_events(self, app: App, request: actions.EventsQuery) -> list[dict[str, Any]]:
        async with self._db.reader() as uow:
            meeting = await uow.meetings.find(app.appid, request.confid, lock=False)
            if meeting is None:
                raise errors.MeetingNotFound(request.confid)
            stored = await uow.events.for_meeting(meeting.id, request.after, request.limit)
        return [event_view(event) for event in stored]

    # ---- the carrier's reports and the clock ----------------------------------------------

    async def on_report(self, report: LegReport) -> None:
        """The carrier's sink: queue the report for `record_reports`, never block the carrier."""
        self._reports.put_nowait(report)

    async def record_reports(self) -> None:
        """Forever: record the queued reports, all of one meeting's in one transaction.

        Under load reports arrive in bursts (every invite brings ringing and answer); loading a
        meeting once for all of its pending reports keeps the cost per report low.
        """
        while True:
            batch = [await self._reports.get()]
            while not self._reports.empty() and len(batch) < REPORT_BATCH:
                batch.append(self._reports.get_nowait())
            by_meeting: dict[str, list[LegReport]] = {}
            for report in batch:
                by_meeting.setdefault(report.meeting_id, []).append(report)
            for meeting_id, reports in by_meeting.items():
                await self._apply_with_retries(meeting_id, reports)
            for _ in batch:
                self._reports.task_done()

    async def reports_recorded(self) -> None:
        """Wait until every report queued so far is recorded (for a graceful stop)."""
        await self._reports.join()

    async def _apply_with_retries(self, meeting_id: str, reports: list[LegReport]) -> None:
        """A passing database error (a dropped connection, a long lock) must not lose what the
        carrier said; a persistent one is logged, and recovery ends the legs after a restart."""
        for delay in REPORT_RETRY_DELAYS:
            try:
                await self._apply_reports(meeting_id, reports)
                return
            except Exception:
                log.exception("reports.failed", meeting_id=meeting_id, reports=len(reports))
                await asyncio.sleep(delay)
        try:
            await self._apply_reports(meeting_id, reports)
        except Exception:  # one meeting's failure must not stop the others' reports
            log.exception("reports.dropped", meeting_id=meeting_id, reports=len(reports))

    async def _apply_reports(self, meeting_id: str, reports: list[LegReport]) -> None:
        async with self._db.unit_of_work() as uow:
            meeting = await uow.meetings.get(meeting_id)
            if meeting is None:
                return
            changed = [_apply_report(meeting, report) for report in reports]
            if not any(changed):
                return
            app = await uow.apps.get(meeting.app_id)
            await self._persist(uow, meeting, app)
        if meeting.state is MeetingState.ENDED:
            await self._driver.end_meeting(meeting.id)

    async def run_due(self) -> int:
        """End meetings past their maximum duration and start booked ones; how many changed."""
        now = self._clock()
        async with self._db.reader() as uow:
            expired, booked = await uow.meetings.ids_due(now)
        for meeting_id in expired:
            await self._expire(meeting_id, now)
        for meeting_id in booked:
            await self._start_booked(meeting_id, now)
        return len(expired) + len(booked)

    async def _expire(self, meeting_id: str, now: float) -> None:
        async with self._db.unit_of_work() as uow:
            meeting = await uow.meetings.get(meeting_id)
            if meeting is None or meeting.state is not MeetingState.ACTIVE:
                return
            app = await uow.apps.get(meeting.app_id)
            legs = meeting.close(CloseReason.MAX_DURATION, now)
            await self._persist(uow, meeting, app)
        await self._carry_out(meeting, _Orders(app.env if app else "", [], legs, True))

    async def _start_booked(self, meeting_id: str, now: float) -> None:
        async with self._db.unit_of_work() as uow:
            meeting = await uow.meetings.get(meeting_id)
            if meeting is None or meeting.state is not MeetingState.BOOKED:
                return
            app = await uow.apps.get(meeting.app_id)
            meeting.start(now, self._settings.meetings.max_duration_seconds)
            meeting.announce_pending_legs(now)
            await self._persist(uow, meeting, app)
        if app is not None:
            await self._carry_out(meeting, _Orders(app.env, meeting.legs_to_dial(), [], False))

    async def recover(self) -> int:
        """After a restart: calls that were up died with the old process; end them once each.

        Only this node's meetings: other servers sharing the database hold their own calls.
        """
        async with self._db.reader() as uow:
            meeting_ids = await uow.meetings.ids_with_live_legs(self._settings.server.node)
        for meeting_id in meeting_ids:
            async with self._db.unit_of_work() as uow:
                meeting = await uow.meetings.get(meeting_id)
                if meeting is None:
                    continue
                meeting.calls_lost(self._clock())
                app = await uow.apps.get(meeting.app_id)
                await self._persist(uow, meeting, app)
        if meeting_ids:
            log.warning("meetings.recovered", meetings=len(meeting_ids))
        return len(meeting_ids)

    # ---- helpers --------------------------------------------------------------------------

    async def _find(self, uow: UnitOfWork, app: App, confid: str) -> Meeting:
        meeting = await uow.meetings.find(app.appid, confid)
        if meeting is None:
            raise errors.MeetingNotFound(confid)
        if meeting.state is MeetingState.ENDED:
            raise errors.MeetingEnded(confid)
        return meeting

    async def _free_room_number(self, uow: UnitOfWork, app_id: str) -> str:
        while True:
            meid = str(secrets.randbelow(9 * 10**8) + 10**8)
            if not await uow.meetings.room_taken(app_id, meid):
                return meid

    @staticmethod
    def _party_caller_id(meeting: Meeting, app: App) -> str:
        return meeting.dstclid or meeting.shownumber or app.caller_id

    async def _persist(self, uow: UnitOfWork, meeting: Meeting, app: App | None) -> None:
        """Save the meeting and store the pushes for what it recorded, in one transaction."""
        pushes = [p for event in meeting.events for p in pushes_for(meeting, event, self._zone)]
        meeting.events.clear()
        pushed = bool(app and app.env == "production" and app.callback_url)
        if pushes:
            first = uow.meetings.reserve_seqs(meeting.id, len(pushes))
            await uow.events.add_all(
                [
                    StoredEvent(
                        id=secrets.token_hex(16),
                        meeting_id=meeting.id,
                        seq=first + offset,
                        leg_id=push.leg_id,
                        app_id=meeting.app_id,
                        kind=push.kind,
                        body=push.encoded(),
                        created_at=push.at,
                        delivery=PENDING if pushed else STORED,
                        attempts=0,
                    )
                    for offset, push in enumerate(pushes)
                ],
                pushed,
            )
            if pushed:
                uow.after_commit(self.pushes_waiting)
        await uow.meetings.save(meeting)

    async def _carry_out(self, meeting: Meeting, orders: _Orders) -> None:
        """Hand the committed decisions to the carrier; failures become leg reports."""
        for leg in orders.hang_up:
            await self._safely(self._driver.hang_up(meeting.id, leg.id), leg)
        for leg in orders.dial:
            if leg.state is not LegState.CALLOUT:
                continue
            phone = parse_phone(leg.phone)
            order = DialOrder(
                meeting_id=meeting.id,
                leg_id=leg.id,
                number=phone.number if phone else leg.phone,
                extension=phone.extension if phone else "",
                caller_id=leg.caller_id,
                env=orders.env,
            )
            if not await self._safely(self._driver.dial(order), leg):
                await self.on_report(
                    LegReport(meeting.id, leg.id, Progress.ENDED, self._clock(), EndReason.FAILED)
                )
        if orders.end:
            await self._safely(self._driver.end_meeting(meeting.id), None)

    @staticmethod
    async def _safely(order: Any, leg: Leg | None) -> bool:
        try:
            await order
        except Exception:
            log.exception("telephony.order_failed", leg_id=leg.id if leg else None)
            return False
        return True

    def _describe(self, meeting: Meeting) -> dict[str, Any]:
        zone = self._zone
        return {
            "meid": meeting.meid,
            "meetingname": meeting.name,
            "state": meeting.state.value,
            "createtime": format_wire_time(meeting.created_at, zone),
            "endtime": format_wire_time(meeting.ended_at, zone),
            "maxmembers": meeting.max_members,
            "members": [
                {
                    "name": leg.name,
                    "phone": leg.phone,
                    "state": leg.state.value,
                    "stateDesc": leg.state_desc,
                    "requestid": leg.request_id,
                    "jointime": format_wire_time(leg.answered_at, zone),
                    "leavetime": format_wire_time(
                        leg.ended_at if leg.answered_at is not None else None, zone
                    ),
                    "muted": leg.muted,
                }
                for leg in meeting.legs
            ],
        }


def _apply_report(meeting: Meeting, report: LegReport) -> bool:
    """What one carrier report changes in the meeting (False when it changes nothing)."""
    if report.progress is Progress.RINGING:
        return meeting.leg_ringing(report.leg_id, report.at)
    if report.progress is Progress.ANSWERED:
        return meeting.leg_answered(report.leg_id, report.at)
    return meeting.leg_ended(report.leg_id, report.reason or EndReason.FAILED, report.at)


def event_view(event: StoredEvent) -> dict[str, Any]:
    """An event as replayed by queryMeetingEvents: its push body, kind and sequence number."""
    return {
        "seq": event.seq,
        "eventId": event.id,
        "type": event.kind,
        "body": json.loads(event.body),
    }
