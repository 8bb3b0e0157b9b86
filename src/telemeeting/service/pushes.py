"""Turn what the domain recorded into the pushes of spec §7, ready to store in the outbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from telemeeting.domain.events import (
    DomainEvent,
    LegEnded,
    LegProgressed,
    MeetingClosed,
    MeetingStarted,
)
from telemeeting.domain.model import INBOUND, PROGRESS_DESC, Leg, LegState, Meeting
from telemeeting.wire import callbacks
from telemeeting.wire.envelope import dump
from telemeeting.wire.times import format_wire_time


@dataclass(frozen=True)
class Push:
    kind: str
    leg_id: str | None
    body: dict[str, Any]
    at: float

    def encoded(self) -> str:
        return dump(self.body).decode("utf-8")


class Charges(Protocol):
    def amount(self, leg_id: str) -> float: ...


class _Free:
    def amount(self, leg_id: str) -> float:
        return 0.0


FREE: Charges = _Free()


def pushes_for(
    meeting: Meeting, event: DomainEvent, zone: ZoneInfo, charges: Charges = FREE
) -> list[Push]:
    """The pushes for one recorded event; a CDR's `oriamount` is the leg's charge."""
    match event:
        case LegProgressed(leg_id=leg_id, state=state, at=at):
            leg = _leg(meeting, leg_id)
            return [
                Push(
                    callbacks.CALL_STATE,
                    leg_id,
                    _call_state(meeting, leg, state, PROGRESS_DESC[LegState(state)], at, zone),
                    at,
                )
            ]
        case LegEnded(leg_id=leg_id, at=at):
            leg = _leg(meeting, leg_id)
            return [
                Push(
                    callbacks.CALL_STATE,
                    leg_id,
                    _call_state(meeting, leg, LegState.DISCONNECT.value, leg.state_desc, at, zone),
                    at,
                ),
                Push(callbacks.CDR, leg_id, _cdr(meeting, leg, zone, charges.amount(leg_id)), at),
            ]
        case MeetingStarted(at=at):
            reason = "booked" if meeting.book_at is not None else "created"
            return [
                Push(
                    callbacks.MEETING_STATE,
                    None,
                    callbacks.meeting_state_body(
                        meid=meeting.meid,
                        state="start",
                        reason=reason,
                        timestamp=format_wire_time(at, zone),
                    ),
                    at,
                )
            ]
        case MeetingClosed(at=at, reason=reason):
            return [
                Push(
                    callbacks.MEETING_STATE,
                    None,
                    callbacks.meeting_state_body(
                        meid=meeting.meid,
                        state="end",
                        reason=reason,
                        timestamp=format_wire_time(at, zone),
                    ),
                    at,
                )
            ]
    raise TypeError(f"unknown domain event {event!r}")


def _leg(meeting: Meeting, leg_id: str) -> Leg:
    leg = meeting.leg(leg_id)
    if leg is None:
        raise LookupError(f"leg {leg_id} not in meeting {meeting.id}")
    return leg


def _call_state(
    meeting: Meeting, leg: Leg, state: str, desc: str, at: float, zone: ZoneInfo
) -> dict[str, Any]:
    return callbacks.call_state_body(
        request_id=leg.request_id,
        meid=meeting.meid,
        phone=leg.phone,
        name=leg.name,
        state=state,
        state_desc=desc,
        timestamp=format_wire_time(at, zone),
        custom_parm=leg.custom_parm,
    )


def _cdr(meeting: Meeting, leg: Leg, zone: ZoneInfo, amount: float) -> dict[str, Any]:
    answered = leg.answered_at is not None
    return callbacks.cdr_body(
        request_id=leg.request_id,
        appid=meeting.app_id,
        meid=meeting.meid,
        caller=leg.caller_id,
        called=leg.phone,
        start=format_wire_time(leg.answered_at, zone),
        end=format_wire_time(leg.ended_at if answered else None, zone),
        duration=leg.duration_seconds,
        custom_parm=leg.custom_parm,
        state_desc=leg.state_desc,
        amount=amount,
        direction=INBOUND if leg.direction == INBOUND else None,
    )
