"""The Meeting aggregate and the Leg state machine (spec §6-§7)."""

from __future__ import annotations

import pytest

from telemeeting.domain import errors
from telemeeting.domain.events import LegEnded, LegProgressed, MeetingClosed, MeetingStarted
from telemeeting.domain.model import (
    PROGRESS_DESC,
    CloseReason,
    EndReason,
    Invitee,
    Leg,
    LegState,
    Meeting,
    MeetingState,
)

T0 = 1_000_000.0
MAX_DURATION = 3600.0


def _meeting(max_members: int = 10, **kwargs) -> Meeting:
    return Meeting.open(
        app_id="app",
        meid="002",
        now=T0,
        max_members=max_members,
        max_duration=MAX_DURATION,
        **kwargs,
    )


def _invite(
    meeting: Meeting, *phones: str, now: float = T0 + 1, request_id: str = "r1"
) -> list[Leg]:
    return meeting.invite(
        [Invitee(phone, f"name-{phone}") for phone in phones],
        request_id=request_id,
        custom_parm="cp",
        caller_id="4001234567",
        now=now,
    )


def _leg_ended_count(meeting: Meeting, leg: Leg) -> int:
    return sum(1 for e in meeting.events if isinstance(e, LegEnded) and e.leg_id == leg.id)


def _closed_events(meeting: Meeting) -> list[MeetingClosed]:
    return [e for e in meeting.events if isinstance(e, MeetingClosed)]


# ---- open -----------------------------------------------------------------------------------


def test_open_active():
    m = _meeting(name="周会", creator="13800138000", custom_parm="cp")
    assert m.state is MeetingState.ACTIVE
    assert m.started_at == T0
    assert m.created_at == T0
    assert m.expires_at == T0 + MAX_DURATION
    assert m.events == [MeetingStarted(T0)]
    assert (m.app_id, m.meid, m.name, m.max_members) == ("app", "002", "周会", 10)
    assert m.creator == "13800138000"
    assert m.custom_parm == "cp"
    assert m.legs == []
    assert m.book_at is None
    assert m.ended_at is None
    assert m.end_reason == ""


def test_open_ids_are_unique():
    assert _meeting().id != _meeting().id


def test_open_booked():
    m = _meeting(book_at=T0 + 600)
    assert m.state is MeetingState.BOOKED
    assert m.book_at == T0 + 600
    assert m.started_at is None
    assert m.expires_at is None
    assert m.events == []


def test_booked_meeting_starts_later():
    m = _meeting(book_at=T0 + 600)
    m.start(T0 + 600, MAX_DURATION)
    assert m.state is MeetingState.ACTIVE
    assert m.started_at == T0 + 600
    assert m.expires_at == T0 + 600 + MAX_DURATION
    assert m.events == [MeetingStarted(T0 + 600)]


def test_start_is_idempotent_once_active():
    m = _meeting()
    m.start(T0 + 5, MAX_DURATION)
    assert m.started_at == T0
    assert m.events == [MeetingStarted(T0)]


@pytest.mark.parametrize("book_at", [T0, T0 - 1, 0.0])
def test_open_booktime_not_in_future(book_at):
    with pytest.raises(errors.InvalidRequest):
        _meeting(book_at=book_at)


def test_state_values():
    assert [s.value for s in MeetingState] == ["booked", "active", "ended"]
    assert [s.value for s in LegState] == ["callout", "callin", "alerting", "answer", "disconnect"]
    assert [r.value for r in CloseReason] == [
        "destroyed",
        "empty",
        "max_duration",
        "cancelled",
        "recovered",
    ]


# ---- invite ---------------------------------------------------------------------------------


def test_invite_creates_callout_legs_and_events():
    m = _meeting()
    legs = _invite(m, "13800138000", "01053889900,1234")
    assert [leg.phone for leg in legs] == ["13800138000", "01053889900,1234"]
    assert m.legs == legs
    for leg in legs:
        assert leg.state is LegState.CALLOUT
        assert leg.live
        assert not leg.joined
        assert leg.request_id == "r1"
        assert leg.custom_parm == "cp"
        assert leg.caller_id == "4001234567"
        assert leg.created_at == T0 + 1
        assert leg.name == f"name-{leg.phone}"
        assert leg.state_desc == "呼出"
        assert leg.answered_at is None
        assert leg.ended_at is None
        assert not leg.muted
    assert m.events[1:] == [LegProgressed(leg.id, "callout", T0 + 1) for leg in legs]
    assert len({leg.id for leg in legs}) == 2


def test_invite_empty_list_adds_nothing():
    m = _meeting()
    assert _invite(m) == []
    assert m.legs == []
    assert m.events == [MeetingStarted(T0)]


def test_invite_booked_meeting_defers_callout_events():
    m = _meeting(book_at=T0 + 600)
    legs = _invite(m, "13800138000", "13800138001")
    assert m.events == []
    assert m.legs_to_dial() == legs
    m.start(T0 + 600, MAX_DURATION)
    m.announce_pending_legs(T0 + 600)
    assert m.events == [
        MeetingStarted(T0 + 600),
        *(LegProgressed(leg.id, "callout", T0 + 600) for leg in legs),
    ]


def test_legs_to_dial_only_callout():
    m = _meeting()
    a, b, c = _invite(m, "1001", "1002", "1003")
    m.leg_ringing(b.id, T0 + 2)
    m.leg_ended(c.id, EndReason.BUSY, T0 + 2)
    assert m.legs_to_dial() == [a]


def test_invite_duplicate_in_request():
    m = _meeting()
    with pytest.raises(errors.MemberAlreadyIn):
        _invite(m, "13800138000", "13800138001", "13800138000")
    assert m.legs == []
    assert m.events == [MeetingStarted(T0)]


@pytest.mark.parametrize("progress", ["none", "ringing", "answered"])
def test_invite_phone_already_live(progress):
    m = _meeting()
    (leg,) = _invite(m, "13800138000")
    if progress in ("ringing", "answered"):
        m.leg_ringing(leg.id, T0 + 2)
    if progress == "answered":
        m.leg_answered(leg.id, T0 + 3)
    events_before = list(m.events)
    with pytest.raises(errors.MemberAlreadyIn):
        _invite(m, "13800138001", "13800138000", now=T0 + 4)
    assert m.legs == [leg]
    assert m.events == events_before


def test_invite_again_after_leg_ended():
    m = _meeting()
    (first,) = _invite(m, "13800138000")
    m.leg_ended(first.id, EndReason.BUSY, T0 + 2)
    (second,) = _invite(m, "13800138000", now=T0 + 3, request_id="r2")
    assert second.id != first.id
    assert second.request_id == "r2"
    assert m.legs == [first, second]


def test_invite_full_counts_live_legs_only():
    m = _meeting(max_members=3)
    a, _b = _invite(m, "1001", "1002")
    with pytest.raises(errors.MeetingFull):
        _invite(m, "1003", "1004")
    assert len(m.legs) == 2
    # Exactly at the limit is fine.
    _invite(m, "1003")
    with pytest.raises(errors.MeetingFull):
        _invite(m, "1004")
    # An ended leg frees its seat.
    m.leg_ended(a.id, EndReason.NO_ANSWER, T0 + 5)
    (d,) = _invite(m, "1004")
    assert d.live
    assert len(m.live_legs) == 3


def test_invite_more_than_max_at_once():
    m = _meeting(max_members=2)
    with pytest.raises(errors.MeetingFull):
        _invite(m, "1001", "1002", "1003")
    assert m.legs == []


def test_invite_duplicate_checked_before_full():
    m = _meeting(max_members=1)
    _invite(m, "1001")
    with pytest.raises(errors.MemberAlreadyIn):
        _invite(m, "1001")


def test_invite_ended_meeting():
    m = _meeting()
    m.close(CloseReason.DESTROYED, T0 + 1)
    events_before = list(m.events)
    with pytest.raises(errors.MeetingEnded):
        _invite(m, "13800138000")
    assert m.legs == []
    assert m.events == events_before


def test_ended_checked_before_duplicate():
    m = _meeting()
    m.close(CloseReason.DESTROYED, T0 + 1)
    with pytest.raises(errors.MeetingEnded):
        _invite(m, "1001", "1001")


def test_extensions_make_distinct_phones():
    m = _meeting()
    legs = _invite(m, "01053889900,1", "01053889900,2", "01053889900")
    assert len(legs) == 3


# ---- leg progress ---------------------------------------------------------------------------


def test_leg_walks_forward():
    m = _meeting()
    (leg,) = _invite(m, "13800138000")
    assert m.leg_ringing(leg.id, T0 + 2)
    assert leg.state is LegState.ALERTING
    assert leg.state_desc == "振铃"
    assert m.leg_answered(leg.id, T0 + 3)
    assert leg.state is LegState.ANSWER
    assert leg.joined
    assert leg.answered_at == T0 + 3
    assert leg.state_desc == "接听"
    assert m.leg_ended(leg.id, EndReason.NORMAL, T0 + 63)
    assert leg.state is LegState.DISCONNECT
    assert not leg.live
    assert not leg.joined
    assert leg.ended_at == T0 + 63
    assert leg.end_reason is EndReason.NORMAL
    assert leg.state_desc == "应答|正常"
    assert leg.duration_seconds == 60
    assert [e for e in m.events if getattr(e, "leg_id", None) == leg.id] == [
        LegProgressed(leg.id, "callout", T0 + 1),
        LegProgressed(leg.id, "alerting", T0 + 2),
        LegProgressed(leg.id, "answer", T0 + 3),
        LegEnded(leg.id, T0 + 63),
    ]


def test_answer_may_skip_ringing():
    m = _meeting()
    (leg,) = _invite(m, "13800138000")
    assert m.leg_answered(leg.id, T0 + 2)
    assert leg.joined
    assert m.events[-1] == LegProgressed(leg.id, "answer", T0 + 2)


def test_never_goes_backwards():
    m = _meeting()
    (leg,) = _invite(m, "13800138000")
    m.leg_answered(leg.id, T0 + 2)
    n = len(m.events)
    assert not m.leg_ringing(leg.id, T0 + 3)
    assert not m.leg_answered(leg.id, T0 + 4)
    assert leg.state is LegState.ANSWER
    assert leg.answered_at == T0 + 2
    assert len(m.events) == n


def test_ringing_twice_is_noop():
    m = _meeting()
    (leg,) = _invite(m, "13800138000")
    assert m.leg_ringing(leg.id, T0 + 2)
    assert not m.leg_ringing(leg.id, T0 + 3)
    assert sum(isinstance(e, LegProgressed) and e.state == "alerting" for e in m.events) == 1


def test_nothing_after_disconnect():
    m = _meeting()
    (leg,) = _invite(m, "13800138000")
    assert m.leg_ended(leg.id, EndReason.BUSY, T0 + 2)
    n = len(m.events)
    assert not m.leg_ringing(leg.id, T0 + 3)
    assert not m.leg_answered(leg.id, T0 + 4)
    assert not m.leg_ended(leg.id, EndReason.NORMAL, T0 + 5)
    assert leg.state is LegState.DISCONNECT
    assert leg.end_reason is EndReason.BUSY
    assert leg.ended_at == T0 + 2
    assert leg.answered_at is None
    assert len(m.events) == n
    assert _leg_ended_count(m, leg) == 1


def test_unknown_leg_reports_are_ignored():
    m = _meeting()
    _invite(m, "13800138000")
    n = len(m.events)
    assert not m.leg_ringing("nope", T0)
    assert not m.leg_answered("nope", T0)
    assert not m.leg_ended("nope", EndReason.NORMAL, T0)
    assert len(m.events) == n
    assert m.leg("nope") is None


def test_leg_lookup():
    m = _meeting()
    a, b = _invite(m, "1001", "1002")
    assert m.leg(a.id) is a
    assert m.leg(b.id) is b


@pytest.mark.parametrize(
    ("answered", "reason", "desc"),
    [
        (True, EndReason.NORMAL, "应答|正常"),
        (False, EndReason.BUSY, "未应答|用户忙"),
        (False, EndReason.NO_ANSWER, "未应答|无应答"),
        (False, EndReason.DECLINED, "未应答|拒接"),
        (False, EndReason.NOT_FOUND, "未应答|号码无效"),
        (False, EndReason.FAILED, "未应答|呼叫失败"),
        (True, EndReason.FAILED, "应答|呼叫失败"),
        (False, EndReason.MEETING_ENDED, "未应答|会议结束"),
        (True, EndReason.MEETING_ENDED, "应答|会议结束"),
        (True, EndReason.KICKED, "应答|被踢出"),
    ],
)
def test_state_desc_on_disconnect(answered, reason, desc):
    m = _meeting()
    legs = _invite(m, "13800138000", "13800138001")  # a second leg keeps the meeting open
    leg = legs[0]
    m.leg_ringing(leg.id, T0 + 2)
    if answered:
        m.leg_answered(leg.id, T0 + 3)
    m.leg_ended(leg.id, reason, T0 + 4)
    assert leg.state_desc == desc


def test_progress_descriptions():
    assert PROGRESS_DESC == {
        LegState.CALLOUT: "呼出",
        LegState.CALLIN: "呼入",
        LegState.ALERTING: "振铃",
        LegState.ANSWER: "接听",
    }
    assert [r.value for r in EndReason] == [
        "正常",
        "用户忙",
        "无应答",
        "拒接",
        "号码无效",
        "呼叫失败",
        "会议结束",
        "被踢出",
        "余额不足",  # extension: the account's balance ran out
    ]


# ---- duration -------------------------------------------------------------------------------


def _leg(**kwargs) -> Leg:
    defaults = dict(
        id="l", phone="1001", name="", request_id="r", custom_parm="", caller_id="", created_at=0.0
    )
    return Leg(**{**defaults, **kwargs})


@pytest.mark.parametrize(
    ("answered_at", "ended_at", "seconds"),
    [
        (None, None, 0),
        (None, 50.0, 0),
        (10.0, None, 0),
        (10.0, 10.0, 0),
        (10.0, 70.0, 60),
        (10.0, 70.4, 60),
        (10.0, 70.6, 61),
        (10.0, 5.0, 0),  # clock went backwards: never negative
    ],
)
def test_duration_seconds(answered_at, ended_at, seconds):
    leg = _leg(answered_at=answered_at, ended_at=ended_at)
    assert leg.duration_seconds == seconds
    assert isinstance(leg.duration_seconds, int)


def test_unanswered_leg_has_zero_duration():
    m = _meeting()
    (leg, _other) = _invite(m, "1001", "1002")
    m.leg_ringing(leg.id, T0 + 2)
    m.leg_ended(leg.id, EndReason.NO_ANSWER, T0 + 32)
    assert leg.duration_seconds == 0


def test_state_desc_without_reason_defaults_to_normal():
    leg = _leg(state=LegState.DISCONNECT, answered_at=1.0, ended_at=2.0)
    assert leg.state_desc == "应答|正常"


# ---- closing itself -------------------------------------------------------------------------


def test_meeting_closes_when_last_live_leg_ends_after_someone_joined():
    m = _meeting()
    a, b = _invite(m, "1001", "1002")
    m.leg_answered(a.id, T0 + 2)
    m.leg_ended(b.id, EndReason.BUSY, T0 + 3)
    assert m.state is MeetingState.ACTIVE
    assert m.leg_ended(a.id, EndReason.NORMAL, T0 + 10)
    assert m.state is MeetingState.ENDED
    assert m.ended_at == T0 + 10
    assert m.end_reason == "empty"
    assert m.events[-2:] == [LegEnded(a.id, T0 + 10), MeetingClosed(T0 + 10, "empty")]


def test_meeting_closes_even_if_the_last_leg_to_end_never_answered():
    m = _meeting()
    a, b = _invite(m, "1001", "1002")
    m.leg_answered(a.id, T0 + 2)
    m.leg_ended(a.id, EndReason.NORMAL, T0 + 3)
    assert m.state is MeetingState.ACTIVE  # b still ringing
    m.leg_ended(b.id, EndReason.NO_ANSWER, T0 + 30)
    assert m.state is MeetingState.ENDED
    assert m.end_reason == "empty"


def test_meeting_does_not_close_when_nobody_ever_joined():
    m = _meeting()
    a, b = _invite(m, "1001", "1002")
    m.leg_ringing(a.id, T0 + 2)
    m.leg_ended(a.id, EndReason.DECLINED, T0 + 3)
    m.leg_ended(b.id, EndReason.BUSY, T0 + 4)
    assert m.live_legs == []
    assert m.state is MeetingState.ACTIVE
    assert _closed_events(m) == []
    # It can still be used.
    (c,) = _invite(m, "1003", now=T0 + 5)
    assert c.live


def test_empty_meeting_without_legs_stays_open():
    m = _meeting()
    assert m.state is MeetingState.ACTIVE
    assert m.live_legs == []


def test_booked_meeting_does_not_close_itself():
    m = _meeting(book_at=T0 + 600)
    (a,) = _invite(m, "1001")
    m.leg_answered(a.id, T0 + 2)  # unusual, but the aggregate does not forbid it
    m.leg_ended(a.id, EndReason.NORMAL, T0 + 3)
    assert m.state is MeetingState.BOOKED
    assert _closed_events(m) == []


def test_kicking_the_last_member_closes_the_meeting():
    m = _meeting()
    (a,) = _invite(m, "1001")
    m.leg_answered(a.id, T0 + 2)
    m.kick("1001", T0 + 5)
    assert m.state is MeetingState.ENDED
    assert m.end_reason == "empty"
    assert a.state_desc == "应答|被踢出"


# ---- close ----------------------------------------------------------------------------------


def test_close_ends_live_legs_with_meeting_ended():
    m = _meeting()
    ringing, joined, callout, gone = _invite(m, "1001", "1002", "1003", "1004")
    m.leg_ringing(ringing.id, T0 + 2)
    m.leg_answered(joined.id, T0 + 2)
    m.leg_ended(gone.id, EndReason.BUSY, T0 + 2)
    hung_up = m.close(CloseReason.DESTROYED, T0 + 10)
    assert hung_up == [ringing, joined, callout]
    assert all(not leg.live for leg in m.legs)
    assert ringing.state_desc == "未应答|会议结束"
    assert callout.state_desc == "未应答|会议结束"
    assert joined.state_desc == "应答|会议结束"
    assert joined.duration_seconds == 8
    assert gone.state_desc == "未应答|用户忙"
    assert gone.ended_at == T0 + 2
    assert m.state is MeetingState.ENDED
    assert m.ended_at == T0 + 10
    assert m.end_reason == "destroyed"
    assert m.events[-4:] == [
        LegEnded(ringing.id, T0 + 10),
        LegEnded(joined.id, T0 + 10),
        LegEnded(callout.id, T0 + 10),
        MeetingClosed(T0 + 10, "destroyed"),
    ]
    for leg in m.legs:
        assert _leg_ended_count(m, leg) == 1
    assert len(_closed_events(m)) == 1


@pytest.mark.parametrize("reason", list(CloseReason))
def test_close_reason_is_recorded(reason):
    m = _meeting()
    assert m.close(reason, T0 + 1) == []
    assert m.end_reason == reason.value
    assert m.events[-1] == MeetingClosed(T0 + 1, reason.value)


def test_close_twice_is_meeting_ended():
    m = _meeting()
    m.close(CloseReason.DESTROYED, T0 + 1)
    n = len(m.events)
    with pytest.raises(errors.MeetingEnded):
        m.close(CloseReason.DESTROYED, T0 + 2)
    assert len(m.events) == n
    assert m.ended_at == T0 + 1


def test_close_after_closing_itself_is_meeting_ended():
    m = _meeting()
    (a,) = _invite(m, "1001")
    m.leg_answered(a.id, T0 + 2)
    m.leg_ended(a.id, EndReason.NORMAL, T0 + 3)
    with pytest.raises(errors.MeetingEnded):
        m.close(CloseReason.DESTROYED, T0 + 4)
    assert len(_closed_events(m)) == 1


def test_close_booked_meeting():
    m = _meeting(book_at=T0 + 600)
    (a,) = _invite(m, "1001")
    assert m.close(CloseReason.CANCELLED, T0 + 5) == [a]
    assert m.state is MeetingState.ENDED
    assert m.end_reason == "cancelled"
    assert a.state_desc == "未应答|会议结束"


def test_late_carrier_reports_after_close_are_ignored():
    m = _meeting()
    (a,) = _invite(m, "1001")
    m.close(CloseReason.DESTROYED, T0 + 5)
    n = len(m.events)
    assert not m.leg_ringing(a.id, T0 + 6)
    assert not m.leg_answered(a.id, T0 + 7)
    assert not m.leg_ended(a.id, EndReason.NORMAL, T0 + 8)
    assert len(m.events) == n
    assert a.end_reason is EndReason.MEETING_ENDED


# ---- member control -------------------------------------------------------------------------


def test_kick_joined_member():
    m = _meeting()
    a, b = _invite(m, "1001", "1002")
    m.leg_answered(a.id, T0 + 2)
    m.leg_answered(b.id, T0 + 2)
    assert m.kick("1001", T0 + 20) is a
    assert a.state is LegState.DISCONNECT
    assert a.end_reason is EndReason.KICKED
    assert a.state_desc == "应答|被踢出"
    assert a.duration_seconds == 18
    assert m.events[-1] == LegEnded(a.id, T0 + 20)
    assert m.state is MeetingState.ACTIVE
    assert _leg_ended_count(m, a) == 1


@pytest.mark.parametrize("progress", ["callout", "alerting", "ended", "unknown"])
def test_kick_non_joined_is_member_not_found(progress):
    m = _meeting()
    a, _keep = _invite(m, "1001", "1002")
    if progress == "alerting":
        m.leg_ringing(a.id, T0 + 2)
    if progress == "ended":
        m.leg_answered(a.id, T0 + 2)
        m.kick("1001", T0 + 3)
    phone = "9999" if progress == "unknown" else "1001"
    n = len(m.events)
    with pytest.raises(errors.MemberNotFound):
        m.kick(phone, T0 + 4)
    assert len(m.events) == n


def test_set_muted_joined_member():
    m = _meeting()
    (a,) = _invite(m, "1001")
    m.leg_answered(a.id, T0 + 2)
    n = len(m.events)
    assert m.set_muted("1001", True) is a
    assert a.muted
    assert m.set_muted("1001", False) is a
    assert not a.muted
    assert len(m.events) == n


@pytest.mark.parametrize("progress", ["callout", "alerting", "ended", "unknown"])
def test_set_muted_non_joined_is_member_not_found(progress):
    m = _meeting()
    a, _keep = _invite(m, "1001", "1002")
    if progress == "alerting":
        m.leg_ringing(a.id, T0 + 2)
    if progress == "ended":
        m.leg_answered(a.id, T0 + 2)
        m.leg_ended(a.id, EndReason.NORMAL, T0 + 3)
    phone = "9999" if progress == "unknown" else "1001"
    with pytest.raises(errors.MemberNotFound):
        m.set_muted(phone, True)
    assert not a.muted


def test_joined_member_finds_the_live_leg_after_reinvite():
    m = _meeting()
    a, _keep = _invite(m, "1001", "1002")
    m.leg_answered(a.id, T0 + 2)
    m.leg_ended(a.id, EndReason.NORMAL, T0 + 3)
    (again,) = _invite(m, "1001", now=T0 + 4, request_id="r2")
    m.leg_answered(again.id, T0 + 5)
    assert m.joined_member("1001") is again
    assert m.kick("1001", T0 + 6) is again
    assert a.end_reason is EndReason.NORMAL


def test_domain_errors_share_a_base():
    for cls in (
        errors.MeetingNotFound,
        errors.MeetingEnded,
        errors.MeetingFull,
        errors.MemberAlreadyIn,
        errors.MemberNotFound,
        errors.InvalidRequest,
    ):
        assert issubclass(cls, errors.DomainError)


def test_a_booking_beyond_the_horizon_is_invalid():
    with pytest.raises(errors.InvalidRequest):
        Meeting.open(
            app_id="a", meid="1", now=1000.0, max_members=5, max_duration=60,
            book_at=1000.0 + 400 * 86400, book_horizon=366 * 86400,
        )  # fmt: skip
    within = Meeting.open(
        app_id="a", meid="1", now=1000.0, max_members=5, max_duration=60,
        book_at=1000.0 + 30 * 86400, book_horizon=366 * 86400,
    )  # fmt: skip
    assert within.state is MeetingState.BOOKED
