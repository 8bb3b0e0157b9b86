"""The meeting aggregate and its legs.

A leg is one invited phone of one request. It walks callout → alerting → answer → disconnect,
possibly skipping steps, and reaches disconnect exactly once: every method that would end an
already ended leg is a no-op, so late reports from the carrier can never produce a second
terminal event. The meeting records what happened in `events`; the service stores them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, StrEnum

from telemeeting.domain import errors
from telemeeting.domain.events import (
    DomainEvent,
    LegEnded,
    LegProgressed,
    MeetingClosed,
    MeetingStarted,
)
from telemeeting.domain.ids import time_ordered_id
from telemeeting.wire import states


def new_id() -> str:
    """A meeting's or leg's id: time-ordered, so new rows append to their indexes (ids.py)."""
    return time_ordered_id()


class MeetingState(StrEnum):
    """A meeting's state; the names are the contract's (wire/states.py)."""

    BOOKED = states.BOOKED
    ACTIVE = states.ACTIVE
    ENDED = states.ENDED


class LegState(StrEnum):
    """A leg's call state; the names are the contract's (wire/states.py)."""

    CALLOUT = states.CALLOUT
    #: **extension** (issue 15): a dial-in caller admitted by the IVR.
    CALLIN = states.CALLIN
    ALERTING = states.ALERTING
    ANSWER = states.ANSWER
    DISCONNECT = states.DISCONNECT


_ORDER = {
    LegState.CALLOUT: 0,
    LegState.CALLIN: 0,
    LegState.ALERTING: 1,
    LegState.ANSWER: 2,
    LegState.DISCONNECT: 3,
}
PROGRESS_DESC = {
    LegState.CALLOUT: "呼出",
    LegState.CALLIN: "呼入",
    LegState.ALERTING: "振铃",
    LegState.ANSWER: "接听",
}
#: A leg's `direction` (issue 15): dialled by us, or a caller who dialled in.
OUTBOUND, INBOUND = "out", "in"


class EndReason(Enum):
    """The reason half of a disconnect's stateDesc (spec §7)."""

    NORMAL = "正常"
    BUSY = "用户忙"
    NO_ANSWER = "无应答"
    DECLINED = "拒接"
    NOT_FOUND = "号码无效"
    FAILED = "呼叫失败"
    MEETING_ENDED = "会议结束"
    KICKED = "被踢出"
    #: **extension**: the account's balance ran out during the call (service/balance_watch.py).
    NO_BALANCE = "余额不足"


class CloseReason(StrEnum):
    """Why a meeting ended (the MeetingState push's `reason`)."""

    DESTROYED = "destroyed"
    EMPTY = "empty"
    MAX_DURATION = "max_duration"
    CANCELLED = "cancelled"
    RECOVERED = "recovered"


@dataclass
class Leg:
    id: str
    phone: str
    name: str
    request_id: str
    custom_parm: str
    caller_id: str
    created_at: float
    state: LegState = LegState.CALLOUT
    answered_at: float | None = None
    ended_at: float | None = None
    end_reason: EndReason | None = None
    muted: bool = False
    #: On hold (issue 14, extension): hears music, neither hears nor is heard by the meeting.
    held: bool = False
    #: OUTBOUND, or INBOUND for a caller who dialled in (issue 15); `caller_id` is then the
    #: dial-in number they called.
    direction: str = OUTBOUND

    @property
    def live(self) -> bool:
        return self.state is not LegState.DISCONNECT

    @property
    def joined(self) -> bool:
        return self.state is LegState.ANSWER

    @property
    def state_desc(self) -> str:
        if self.state is not LegState.DISCONNECT:
            return PROGRESS_DESC[self.state]
        answered = "应答" if self.answered_at is not None else "未应答"
        reason = self.end_reason.value if self.end_reason else EndReason.NORMAL.value
        return f"{answered}|{reason}"

    @property
    def duration_seconds(self) -> int:
        if self.answered_at is None or self.ended_at is None:
            return 0
        return max(0, round(self.ended_at - self.answered_at))


@dataclass(frozen=True)
class Invitee:
    phone: str
    name: str = ""


@dataclass
class Meeting:
    id: str
    app_id: str
    meid: str
    name: str
    max_members: int
    created_at: float
    expires_at: float | None
    state: MeetingState = MeetingState.ACTIVE
    creator: str = ""
    srcclid: str = ""
    dstclid: str = ""
    shownumber: str = ""
    custom_parm: str = ""
    book_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    end_reason: str = ""
    #: Someone has answered at some point; the meeting then ends when it empties.
    ever_joined: bool = False
    #: Legs not yet disconnected, whether loaded or not: fullness and emptiness need no legs.
    live_count: int = 0
    #: **extension** (issue 15): callers may dial in with the meeting number and this PIN.
    dialin: bool = False
    pin: str = ""
    #: The legs this object holds: all of them, or (for a change) only those it is about: the
    #: invited phones' live legs, the legs a carrier report names, or every live leg to end.
    legs: list[Leg] = field(default_factory=list)
    events: list[DomainEvent] = field(default_factory=list)

    # ---- creation -------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        *,
        app_id: str,
        meid: str,
        now: float,
        max_members: int,
        max_duration: float,
        name: str = "",
        book_at: float | None = None,
        creator: str = "",
        srcclid: str = "",
        dstclid: str = "",
        shownumber: str = "",
        custom_parm: str = "",
        book_horizon: float | None = None,
    ) -> Meeting:
        """A new meeting: active now, or booked until `book_at`."""
        meeting = cls(
            id=new_id(),
            app_id=app_id,
            meid=meid,
            name=name,
            max_members=max_members,
            created_at=now,
            expires_at=None,
            state=MeetingState.BOOKED,
            book_at=book_at,
            creator=creator,
            srcclid=srcclid,
            dstclid=dstclid,
            shownumber=shownumber,
            custom_parm=custom_parm,
        )
        if book_at is not None and book_at <= now:
            raise errors.InvalidRequest("booktime is not in the future")
        if book_at is not None and book_horizon is not None and book_at > now + book_horizon:
            raise errors.InvalidRequest("booktime is beyond the booking horizon")
        if book_at is None:
            meeting.start(now, max_duration)
        return meeting

    def start(self, now: float, max_duration: float) -> None:
        if self.state is not MeetingState.BOOKED:
            return
        self.state = MeetingState.ACTIVE
        self.started_at = now
        self.expires_at = now + max_duration
        self.events.append(MeetingStarted(now))

    # ---- queries --------------------------------------------------------------------------

    @property
    def live_legs(self) -> list[Leg]:
        return [leg for leg in self.legs if leg.live]

    def leg(self, leg_id: str) -> Leg | None:
        return next((leg for leg in self.legs if leg.id == leg_id), None)

    def joined_member(self, phone: str) -> Leg:
        for leg in self.legs:
            if leg.joined and leg.phone == phone:
                return leg
        raise errors.MemberNotFound(phone)

    # ---- invitations ----------------------------------------------------------------------

    def invite(
        self,
        invitees: list[Invitee],
        *,
        request_id: str,
        custom_parm: str,
        caller_id: str,
        now: float,
    ) -> list[Leg]:
        """New legs in callout, one per invitee; all or nothing.

        The invited phones' live legs must be loaded (the duplicate check looks only at them).
        """
        if self.state is MeetingState.ENDED:
            raise errors.MeetingEnded(self.meid)
        phones = [invitee.phone for invitee in invitees]
        busy = {leg.phone for leg in self.live_legs}
        if len(set(phones)) != len(phones) or busy.intersection(phones):
            raise errors.MemberAlreadyIn(self.meid)
        if self.live_count + len(invitees) > self.max_members:
            raise errors.MeetingFull(self.meid)
        legs = [
            Leg(
                id=new_id(),
                phone=invitee.phone,
                name=invitee.name,
                request_id=request_id,
                custom_parm=custom_parm,
                caller_id=caller_id,
                created_at=now,
            )
            for invitee in invitees
        ]
        self.legs.extend(legs)
        self.live_count += len(legs)
        if self.state is MeetingState.ACTIVE:
            self.events.extend(LegProgressed(leg.id, leg.state.value, now) for leg in legs)
        return legs

    def admit_caller(
        self, phone: str, called: str, *, request_id: str, now: float, muted: bool = False
    ) -> Leg:
        """A caller who dialled in and keyed the right PIN joins as a leg in `callin` (issue 15);
        MeetingFull at maxmembers, MeetingEnded after the end (not started: BOOKED is the
        caller's to refuse)."""
        if self.state is MeetingState.ENDED:
            raise errors.MeetingEnded(self.meid)
        if self.state is MeetingState.BOOKED:
            raise errors.InvalidRequest("the meeting has not started")
        if self.live_count + 1 > self.max_members:
            raise errors.MeetingFull(self.meid)
        leg = Leg(
            id=new_id(),
            phone=phone,
            name="",
            request_id=request_id,
            custom_parm=self.custom_parm,
            caller_id=called,
            created_at=now,
            state=LegState.CALLIN,
            muted=muted,
            direction=INBOUND,
        )
        self.legs.append(leg)
        self.live_count += 1
        self.events.append(LegProgressed(leg.id, leg.state.value, now))
        return leg

    def legs_to_dial(self) -> list[Leg]:
        """Legs not yet reported by the carrier (dialled when a booked meeting starts)."""
        return [leg for leg in self.legs if leg.state is LegState.CALLOUT]

    def announce_pending_legs(self, now: float) -> None:
        """A booked meeting's legs enter callout when it starts."""
        self.events.extend(
            LegProgressed(leg.id, leg.state.value, now) for leg in self.legs_to_dial()
        )

    # ---- reports from the carrier ---------------------------------------------------------

    def leg_ringing(self, leg_id: str, now: float) -> bool:
        return self._advance(leg_id, LegState.ALERTING, now)

    def leg_answered(self, leg_id: str, now: float) -> bool:
        return self._advance(leg_id, LegState.ANSWER, now)

    def _advance(self, leg_id: str, state: LegState, now: float) -> bool:
        leg = self.leg(leg_id)
        if leg is None or _ORDER[leg.state] >= _ORDER[state] or self.state is MeetingState.BOOKED:
            return False  # unknown, stale, or about a leg not dialled yet
        leg.state = state
        if state is LegState.ANSWER:
            leg.answered_at = now
            self.ever_joined = True
        self.events.append(LegProgressed(leg.id, state.value, now))
        return True

    def leg_ended(self, leg_id: str, reason: EndReason, now: float) -> bool:
        """The carrier's report that a leg is gone; may close a meeting that has emptied."""
        leg = self.leg(leg_id)
        if leg is None or self.state is MeetingState.BOOKED:
            return False  # nothing is dialled before a booked meeting starts
        if not self._end_leg(leg, reason, now):
            return False
        if self.state is MeetingState.ACTIVE and self.live_count == 0 and self.ever_joined:
            self._close(CloseReason.EMPTY, now)
        return True

    def _end_leg(self, leg: Leg, reason: EndReason, now: float) -> bool:
        if not leg.live:
            return False
        leg.state = LegState.DISCONNECT
        self.live_count -= 1
        leg.ended_at = now
        leg.end_reason = reason
        self.events.append(LegEnded(leg.id, now))
        return True

    def calls_lost(
        self, now: float, keep: set[str] | frozenset[str] = frozenset(), close: bool = True
    ) -> list[Leg]:
        """The carrier lost every call (its node restarted or died): live legs end with
        呼叫失败, except those in `keep` (never dialled yet: they still can be). With `close`, a
        meeting whose members had joined and that has nobody left ends (reason `recovered`);
        without, it stays active for the application to invite again (failover to another
        node). Needs every live leg loaded."""
        lost = [leg for leg in self.live_legs if leg.id not in keep]
        for leg in lost:
            self._end_leg(leg, EndReason.FAILED, now)
        emptied = self.ever_joined and self.live_count == 0
        if close and emptied and self.state is MeetingState.ACTIVE:
            self._close(CloseReason.RECOVERED, now)
        return lost

    # ---- member control -------------------------------------------------------------------

    def set_muted(self, phone: str, muted: bool) -> Leg:
        leg = self.joined_member(phone)
        leg.muted = muted
        return leg

    def set_held(self, phone: str, held: bool) -> Leg:
        leg = self.joined_member(phone)
        leg.held = held
        return leg

    def kick(self, phone: str, now: float) -> Leg:
        leg = self.joined_member(phone)
        self.leg_ended(leg.id, EndReason.KICKED, now)
        return leg

    # ---- ending ---------------------------------------------------------------------------

    def close(self, reason: CloseReason, now: float) -> list[Leg]:
        """End the meeting; returns the legs the carrier must hang up or cancel (every live leg
        must be loaded)."""
        if self.state is MeetingState.ENDED:
            raise errors.MeetingEnded(self.meid)
        to_hang_up = self.live_legs
        for leg in to_hang_up:
            self._end_leg(leg, EndReason.MEETING_ENDED, now)
        self._close(reason, now)
        return to_hang_up

    def _close(self, reason: CloseReason, now: float) -> None:
        self.state = MeetingState.ENDED
        self.ended_at = now
        self.end_reason = str(reason)
        self.events.append(MeetingClosed(now, str(reason)))
