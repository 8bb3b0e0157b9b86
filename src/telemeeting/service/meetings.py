"""The meeting use cases. Each runs in one transaction that records the change, the pushes it
causes and the carrier orders it needs (both outboxes), so a crash after commit loses nothing and
a crash before commit means the request was never accepted. The carrier is not called here: the
media node that owns the meeting claims the orders (service/media.py).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Callable
from datetime import tzinfo
from pathlib import Path
from typing import Any

from telemeeting.config import Settings
from telemeeting.domain import errors
from telemeeting.domain.model import CloseReason, Invitee, Leg, Meeting, MeetingState
from telemeeting.service import meeting_media, prompts, recordings
from telemeeting.service.acceptance import Acceptance
from telemeeting.service.changes import ChangeRecorder, dial_orders, hang_up_orders
from telemeeting.service.placement import Placement
from telemeeting.store.connection import Conflict
from telemeeting.store.recordings import RecordingRepository
from telemeeting.store.records import App, StoredEvent
from telemeeting.store.repositories import (
    LIVE_LEGS,
    NO_LEGS,
    LegSelection,
    live_legs_of,
)
from telemeeting.store.unit_of_work import Database, UnitOfWork
from telemeeting.telephony.orders import (
    HoldMember,
    Order,
    PlayPrompt,
    SetMuted,
    StopPrompt,
    StopRecording,
)
from telemeeting.wire import actions
from telemeeting.wire.times import format_wire_time, parse_wall_clock


class MeetingService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: Callable[[], float],
        placement: Placement,
        recorder: ChangeRecorder,
    ) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock
        self._zone = settings.zone
        self._placement = placement
        self._recorder = recorder
        self._links = recorder.links or recordings.RecordingLinks.from_settings(settings)

    # ---- use cases ------------------------------------------------------------------------

    async def create_meeting(
        self, app: App, request: actions.CreateMeeting, accept: Acceptance
    ) -> str:
        now = self._clock()
        book_at = None
        if request.book:
            book_at = parse_wall_clock(request.book_time or "", self._booking_zone(app, accept))
            if book_at is None:
                raise errors.InvalidRequest("booktime is not yyyyMMddHHmmss or yyyy-MM-dd HH:mm:ss")
        # Booked meetings are placed when they start (service/clock.py).
        owner = "" if book_at is not None else await self._placement.choose()
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
                    book_horizon=self._settings.meetings.booking_horizon_days * 86400,
                )
                if request.dialin:  # **extension** (issue 15)
                    meeting.dialin, meeting.pin = True, request.pin or new_pin()
                if request.creator:
                    meeting.invite(
                        [Invitee(request.creator.wire)],
                        request_id=accept.request_id,
                        custom_parm=request.custom_parm,
                        caller_id=request.srcclid or request.shownumber or app.caller_id,
                        now=now,
                    )
                meeting.invite(
                    [Invitee(p.phone.wire, p.name) for p in request.parties],
                    request_id=accept.request_id,
                    custom_parm=request.custom_parm,
                    caller_id=self._party_caller_id(meeting, app),
                    now=now,
                )
                _join_muted(meeting.legs, request.parties)
                await uow.meetings.add(meeting, owner=owner)
                beep = self._settings.meetings.beep
                media = meeting_media.requested(request, beep)
                given = request.beep is not None
                await meeting_media.keep(uow, meeting, media, beep, beep_given=given)
                orders = []
                if meeting.state is MeetingState.ACTIVE:
                    orders = await meeting_media.starting_orders(
                        uow, meeting, media, self._settings, app.env, now
                    )
                    orders += dial_orders(meeting, meeting.legs, app.env)
                    orders += _muted_orders(meeting, meeting.legs, app.env)
                await self._record(uow, meeting, app, orders, now)
                await accept.record(uow, meid=meeting.meid, **self._dialin_answer(meeting))
        except Conflict as exc:  # another request took the room number meanwhile
            raise errors.InvalidRequest("confid is in use") from exc
        return meeting.meid

    async def create_meeting_answer(
        self, app: App, request: actions.CreateMeeting, accept: Acceptance
    ) -> dict[str, Any]:
        """createMeeting's answer: `meid`, and for a dial-in meeting (issue 15) its `pin` and
        `dialinnumbers` (the numbers callers may dial for it)."""
        if request.dialin and request.pin is None:
            request = dataclasses.replace(request, pin=new_pin())
        meid = await self.create_meeting(app, request, accept)
        if not request.dialin:
            return {"meid": meid}
        return {"meid": meid, "pin": request.pin, "dialinnumbers": self._dialin_numbers(meid)}

    def _dialin_numbers(self, meid: str) -> list[str]:
        """The IVR's numbers and any bound to this meeting number (`[[sip.dialin]]`)."""
        return [d.number for d in self._settings.sip.dialin if d.meid in ("", meid)]

    def _dialin_answer(self, meeting: Meeting) -> dict[str, Any]:
        if not meeting.dialin:
            return {}
        return {"pin": meeting.pin, "dialinnumbers": self._dialin_numbers(meeting.meid)}

    async def invite(self, app: App, request: actions.Invite, accept: Acceptance) -> None:
        now = self._clock()
        async with self._db.unit_of_work() as uow:
            phones = [p.phone.wire for p in request.parties]
            meeting = await self._find(uow, app, request.confid, live_legs_of(phones))
            legs = meeting.invite(
                [Invitee(p.phone.wire, p.name) for p in request.parties],
                request_id=accept.request_id,
                custom_parm=request.custom_parm,
                caller_id=self._party_caller_id(meeting, app),
                now=now,
            )
            _join_muted(legs, request.parties)
            orders = []
            if meeting.state is MeetingState.ACTIVE:
                orders = dial_orders(meeting, legs, app.env) + _muted_orders(meeting, legs, app.env)
            await self._record(uow, meeting, app, orders, now)
            await accept.record(uow)

    async def destroy_meeting(
        self, app: App, request: actions.MeetingRef, accept: Acceptance
    ) -> None:
        now = self._clock()
        async with self._db.unit_of_work() as uow:
            meeting = await self._find(uow, app, request.confid)
            was_booked = meeting.state is MeetingState.BOOKED
            reason = CloseReason.CANCELLED if was_booked else CloseReason.DESTROYED
            legs = meeting.close(reason, now)
            orders = [] if was_booked else hang_up_orders(meeting, legs, app.env, end=True)
            await self._record(uow, meeting, app, orders, now)
            await accept.record(uow)

    async def query_meeting(self, app: App, request: actions.MeetingRef) -> dict[str, Any]:
        async with self._db.reader() as uow:
            found = await uow.meetings.read_with_media(app.appid, request.confid)
            if found is None:
                raise errors.MeetingNotFound(request.confid)
            meeting, talking = found.meeting, found.talking
            recorded = []  # one statement more only for a meeting that was recorded
            if found.recorded:
                recorded = await RecordingRepository(uow.connection).for_meeting(meeting.id)
        described = self._describe(meeting)
        if meeting.dialin:  # **extension** (issue 15): the PIN, numbers and who dialled in
            described.update(self._dialin_answer(meeting))
            for leg, view in zip(meeting.legs, described["members"], strict=True):
                view["direction"] = leg.direction
        if talking is not None:  # **extension**: meetings with speaker events
            for leg, view in zip(meeting.legs, described["members"], strict=True):
                view["speaking"] = leg.id in talking
        if recorded:  # **extension**: only meetings that were recorded carry the list
            described["recordings"] = recordings.describe(
                recorded, meeting, self._links, self._zone, self._clock()
            )
        return described

    # ---- in-call media (issue 14, extensions) ---------------------------------------------

    async def set_recording(
        self, app: App, request: actions.MeetingRef, on: bool, accept: Acceptance
    ) -> None:
        """startMeetingRecording / stopMeetingRecording: -101 when already (not) recording."""
        now = self._clock()
        async with self._db.unit_of_work() as uow:
            meeting = await self._find(uow, app, request.confid, NO_LEGS)
            if meeting.state is not MeetingState.ACTIVE:
                raise errors.InvalidRequest("the meeting has not started")
            repository = RecordingRepository(uow.connection)
            current = recordings.running(await repository.for_meeting(meeting.id))
            if on and current is not None and recordings.abandoned(current, now):
                await repository.stop(current.id, now)  # its node died: start afresh
                current = None
            order: Order
            if on:
                if current is not None:
                    raise errors.InvalidRequest("the meeting is already being recorded")
                row, order = recordings.new_recording(self._settings, meeting, app.env, now)
                await repository.add(row)
            else:
                if current is None:
                    raise errors.InvalidRequest("the meeting is not being recorded")
                await repository.stop(current.id, now)
                order = StopRecording(meeting.id, current.id, app.env)
            await self._record(uow, meeting, app, [order], now)
            await accept.record(uow)

    async def mute_all(
        self, app: App, request: actions.MeetingRef, muted: bool, accept: Acceptance
    ) -> None:
        """muteAllMeetingMembers / unmuteAllMeetingMembers: every live leg but the creator's
        (legs still ringing too: they join as the others are)."""
        now = self._clock()
        async with self._db.unit_of_work() as uow:
            meeting = await self._find(uow, app, request.confid)
            orders: list[Order] = []
            for leg in meeting.live_legs:
                if leg.phone != meeting.creator and leg.muted != muted:
                    leg.muted = muted
                    orders.append(SetMuted(meeting.id, leg.id, muted, app.env))
            await self._record(uow, meeting, app, orders, now)
            await accept.record(uow)

    async def hold(
        self, app: App, request: actions.MemberRef, held: bool, accept: Acceptance
    ) -> None:
        """holdMeetingMember / unholdMeetingMember: -304 unless the phone is a joined member."""
        now = self._clock()
        async with self._db.unit_of_work() as uow:
            meeting = await self._find(uow, app, request.confid, live_legs_of([request.phone]))
            leg = meeting.set_held(request.phone, held)
            order = HoldMember(meeting.id, leg.id, held, app.env)
            await self._record(uow, meeting, app, [order], now)
            await accept.record(uow)

    async def play_prompt(
        self, app: App, request: actions.PromptRequest, accept: Acceptance
    ) -> None:
        """playMeetingPrompt: the audio is made first (espeak-ng or the URL, outside any
        transaction), then the order is recorded; -304 when `phone` is not a joined member."""
        phones = [request.phone] if request.phone else []
        async with self._db.reader() as uow:  # refuse a wrong meeting before the slow part
            await self._find(uow, app, request.confid, live_legs_of(phones))
        directory = Path(self._settings.recordings.directory).resolve() / "prompts"
        if request.text is not None:
            path = await prompts.speak(request.text, directory)
        else:
            assert request.url is not None
            allow = self._settings.prompts.allow_private_urls
            path = await prompts.fetch(request.url, directory, allow_private=allow)
        now = self._clock()
        async with self._db.unit_of_work() as uow:
            meeting = await self._find(uow, app, request.confid, live_legs_of(phones))
            leg_id = meeting.joined_member(request.phone).id if request.phone else ""
            order = PlayPrompt(meeting.id, str(path), app.env, leg_id=leg_id, loop=request.loop)
            await self._record(uow, meeting, app, [order], now)
            await accept.record(uow)

    async def stop_prompt(
        self, app: App, request: actions.StopPromptRequest, accept: Acceptance
    ) -> None:
        """stopMeetingPrompt: silence the prompts playing to `phone` (-304 unless a joined
        member), or without `phone` every prompt of the meeting (looping ones included)."""
        now = self._clock()
        phones = [request.phone] if request.phone else []
        async with self._db.unit_of_work() as uow:
            meeting = await self._find(uow, app, request.confid, live_legs_of(phones))
            leg_id = meeting.joined_member(request.phone).id if request.phone else ""
            order = StopPrompt(meeting.id, app.env, leg_id=leg_id)
            await self._record(uow, meeting, app, [order], now)
            await accept.record(uow)

    async def set_muted(
        self, app: App, request: actions.MemberRef, muted: bool, accept: Acceptance
    ) -> None:
        now = self._clock()
        async with self._db.unit_of_work() as uow:
            meeting = await self._find(uow, app, request.confid, live_legs_of([request.phone]))
            leg = meeting.set_muted(request.phone, muted)
            order = SetMuted(meeting.id, leg.id, muted, app.env)
            await self._record(uow, meeting, app, [order], now)
            await accept.record(uow)

    async def kick_member(self, app: App, request: actions.MemberRef, accept: Acceptance) -> None:
        now = self._clock()
        async with self._db.unit_of_work() as uow:
            meeting = await self._find(uow, app, request.confid, live_legs_of([request.phone]))
            beep = self._settings.meetings.beep
            if await meeting_media.ends_with_creator(uow, meeting, request.phone, beep):
                # `endoncreatorleave`: the others end too (会议结束), as when the creator hangs
                # up; that needs every live leg (loaded again, nothing changed yet).
                meeting = await self._find(uow, app, request.confid)
                leg = meeting.kick(request.phone, now)
                legs = [leg]
                if meeting.state is MeetingState.ACTIVE:
                    legs += meeting.close(CloseReason.EMPTY, now)
            else:
                leg = meeting.kick(request.phone, now)
                legs = [leg]
            ended = meeting.state is MeetingState.ENDED
            orders = hang_up_orders(meeting, legs, app.env, end=ended)
            await self._record(uow, meeting, app, orders, now)
            await accept.record(uow)

    async def query_events(self, app: App, request: actions.EventsQuery) -> list[dict[str, Any]]:
        async with self._db.reader() as uow:
            meeting = await uow.meetings.find(app.appid, request.confid, NO_LEGS, lock=False)
            if meeting is None:
                raise errors.MeetingNotFound(request.confid)
            stored = await uow.events.for_meeting(meeting.id, request.after, request.limit)
        return [event_view(event) for event in stored]

    # ---- helpers --------------------------------------------------------------------------

    async def _record(
        self, uow: UnitOfWork, meeting: Meeting, app: App, orders: list[Any], now: float
    ) -> None:
        await self._recorder.record(uow, meeting, app, orders, now)

    async def _find(
        self, uow: UnitOfWork, app: App, confid: str, legs: LegSelection = LIVE_LEGS
    ) -> Meeting:
        """The app's open meeting, locked, with the legs the change needs."""
        meeting = await uow.meetings.find(app.appid, confid, legs)
        if meeting is None:
            raise errors.MeetingNotFound(confid)
        if meeting.state is MeetingState.ENDED:
            raise errors.MeetingEnded(confid)
        return meeting

    def _booking_zone(self, app: App, accept: Acceptance) -> tzinfo:
        """The zone `booktime` is read in: the app's own when the operator set one, else the
        zone the client's Authorization timestamp was stamped in, else the platform's."""
        explicit = app.zone
        if explicit is not None:
            return explicit
        inferred = accept.client_clock.zone if accept.client_clock is not None else None
        return inferred if inferred is not None else self._zone

    async def _free_room_number(self, uow: UnitOfWork, app_id: str) -> str:
        while True:
            meid = str(secrets.randbelow(9 * 10**8) + 10**8)
            if not await uow.meetings.room_taken(app_id, meid):
                return meid

    @staticmethod
    def _party_caller_id(meeting: Meeting, app: App) -> str:
        return meeting.dstclid or meeting.shownumber or app.caller_id

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
                    # **extension** (issue 14): on hold (music, neither hearing nor heard).
                    "held": leg.held and leg.live,
                }
                for leg in meeting.legs
            ],
        }


def new_pin() -> str:
    """A dial-in PIN when the application gives none: six random digits."""
    return f"{secrets.randbelow(10**6):06d}"


def _join_muted(legs: list[Leg], parties: tuple[actions.Party, ...]) -> None:
    """Parties invited with `"muted": "1"` start muted (shown so by queryMeeting at once)."""
    muted = {party.phone.wire for party in parties if party.muted}
    for leg in legs:
        if leg.phone in muted:
            leg.muted = True


def _muted_orders(meeting: Meeting, legs: list[Leg], env: str) -> list[Order]:
    """Mute orders for legs that join muted, after their dial orders (the carrier applies a
    mute to a ringing leg when it answers)."""
    return [SetMuted(meeting.id, leg.id, True, env) for leg in legs if leg.muted]


def event_view(event: StoredEvent) -> dict[str, Any]:
    """An event as replayed by queryMeetingEvents: its push body, kind and sequence number."""
    return {
        "seq": event.seq,
        "eventId": event.id,
        "type": event.kind,
        "body": json.loads(event.body),
    }
