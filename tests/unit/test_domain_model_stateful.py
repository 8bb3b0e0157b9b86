"""Random sequences of operations against the Meeting aggregate, checked against a shadow model.

Whatever the order of carrier reports, invitations, kicks and closes: a leg never goes
backwards, gets exactly one LegEnded once it is gone (and none before), the meeting closes at
most once, and it closes itself exactly when the last live leg ends after someone joined.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from telemeeting.domain import errors
from telemeeting.domain.events import LegEnded, LegProgressed, MeetingClosed, MeetingStarted
from telemeeting.domain.model import (
    CloseReason,
    EndReason,
    Invitee,
    Meeting,
    MeetingState,
)

PHONES = ["1001", "1002", "1003", "1004", "1005", "01053889900,12"]
ORDER = {"callout": 0, "alerting": 1, "answer": 2, "disconnect": 3}
T0 = 1_000_000.0


@dataclass
class ShadowLeg:
    phone: str
    order: int = 0
    answered: bool = False
    reason: EndReason | None = None


class MeetingMachine(RuleBasedStateMachine):
    @initialize(booked=st.booleans(), max_members=st.integers(min_value=1, max_value=5))
    def open(self, booked, max_members):
        self.now = T0
        self.meeting = Meeting.open(
            app_id="app",
            meid="m1",
            now=T0,
            max_members=max_members,
            max_duration=3600,
            book_at=T0 + 100 if booked else None,
        )
        self.state = "booked" if booked else "active"
        self.shadow: dict[str, ShadowLeg] = {}
        self.order: list[str] = []
        self.expected_close_reason: str | None = None
        self.requests = 0

    # ---- helpers ------------------------------------------------------------------------------

    def tick(self) -> float:
        self.now += 1
        return self.now

    def pick(self, index: int) -> str:
        return self.order[index % len(self.order)]

    def live_phones(self) -> list[str]:
        return [s.phone for s in self.shadow.values() if s.order < 3]

    def joined_phones(self) -> list[str]:
        return [s.phone for s in self.shadow.values() if s.order == 2]

    def ever_joined(self) -> bool:
        return any(s.answered for s in self.shadow.values())

    def expect_end(self, leg_id: str, reason: EndReason) -> bool:
        leg = self.shadow[leg_id]
        if leg.order == 3:
            return False
        leg.order = 3
        leg.reason = reason
        if self.state == "active" and not self.live_phones() and self.ever_joined():
            self.state = "ended"
            self.expected_close_reason = "empty"
        return True

    # ---- rules --------------------------------------------------------------------------------

    @rule(phones=st.lists(st.sampled_from(PHONES), max_size=4))
    def invite(self, phones):
        now = self.tick()
        self.requests += 1
        live = self.live_phones()
        if self.state == "ended":
            expected = errors.MeetingEnded
        elif len(set(phones)) != len(phones) or set(phones) & set(live):
            expected = errors.MemberAlreadyIn
        elif len(live) + len(phones) > self.meeting.max_members:
            expected = errors.MeetingFull
        else:
            expected = None
        before_legs = list(self.meeting.legs)
        before_events = list(self.meeting.events)
        try:
            legs = self.meeting.invite(
                [Invitee(p) for p in phones],
                request_id=f"r{self.requests}",
                custom_parm="",
                caller_id="",
                now=now,
            )
        except errors.DomainError as exc:
            assert expected is not None, f"unexpected {exc!r}"
            assert type(exc) is expected
            assert self.meeting.legs == before_legs
            assert self.meeting.events == before_events
            return
        assert expected is None, f"expected {expected.__name__}"
        assert [leg.phone for leg in legs] == phones
        for leg in legs:
            assert leg.id not in self.shadow
            self.shadow[leg.id] = ShadowLeg(leg.phone)
            self.order.append(leg.id)

    @precondition(lambda self: self.order and self.state != "booked")  # dialled once started
    @rule(index=st.integers(min_value=0, max_value=50))
    def ring(self, index):
        leg_id = self.pick(index)
        expected = self.shadow[leg_id].order < 1
        assert self.meeting.leg_ringing(leg_id, self.tick()) is expected
        if expected:
            self.shadow[leg_id].order = 1

    @precondition(lambda self: self.order and self.state != "booked")  # dialled once started
    @rule(index=st.integers(min_value=0, max_value=50))
    def answer(self, index):
        leg_id = self.pick(index)
        expected = self.shadow[leg_id].order < 2
        assert self.meeting.leg_answered(leg_id, self.tick()) is expected
        if expected:
            self.shadow[leg_id].order = 2
            self.shadow[leg_id].answered = True

    @precondition(lambda self: self.order and self.state != "booked")
    @rule(
        index=st.integers(min_value=0, max_value=50),
        reason=st.sampled_from(
            [r for r in EndReason if r not in (EndReason.KICKED, EndReason.MEETING_ENDED)]
        ),
    )
    def end(self, index, reason):
        leg_id = self.pick(index)
        expected = self.expect_end(leg_id, reason)
        assert self.meeting.leg_ended(leg_id, reason, self.tick()) is expected

    @precondition(lambda self: self.order and self.state == "booked")
    @rule(index=st.integers(min_value=0, max_value=50))
    def report_before_start(self, index):
        # Nothing is dialled before a booked meeting starts: a report is stale or forged.
        leg_id = self.pick(index)
        n = len(self.meeting.events)
        assert not self.meeting.leg_ringing(leg_id, self.tick())
        assert not self.meeting.leg_answered(leg_id, self.tick())
        assert not self.meeting.leg_ended(leg_id, EndReason.NORMAL, self.tick())
        assert len(self.meeting.events) == n

    @rule()
    def report_unknown_leg(self):
        n = len(self.meeting.events)
        assert not self.meeting.leg_ringing("unknown", self.tick())
        assert not self.meeting.leg_answered("unknown", self.tick())
        assert not self.meeting.leg_ended("unknown", EndReason.NORMAL, self.tick())
        assert len(self.meeting.events) == n

    @rule(phone=st.sampled_from(PHONES))
    def kick(self, phone):
        now = self.tick()
        joined = [lid for lid, s in self.shadow.items() if s.phone == phone and s.order == 2]
        if not joined:
            try:
                self.meeting.kick(phone, now)
            except errors.MemberNotFound:
                return
            raise AssertionError("kick of a non-member succeeded")
        (leg_id,) = joined
        self.expect_end(leg_id, EndReason.KICKED)
        assert self.meeting.kick(phone, now).id == leg_id

    @rule(phone=st.sampled_from(PHONES), muted=st.booleans())
    def mute(self, phone, muted):
        joined = phone in self.joined_phones()
        try:
            leg = self.meeting.set_muted(phone, muted)
        except errors.MemberNotFound:
            assert not joined
            return
        assert joined
        assert leg.muted is muted

    @precondition(lambda self: self.state == "booked")
    @rule()
    def start(self):
        now = self.tick()
        self.meeting.start(now, 3600)
        self.meeting.announce_pending_legs(now)
        self.state = "active"

    @rule(reason=st.sampled_from(list(CloseReason)))
    def close(self, reason):
        now = self.tick()
        if self.state == "ended":
            try:
                self.meeting.close(reason, now)
            except errors.MeetingEnded:
                return
            raise AssertionError("closing an ended meeting succeeded")
        live = [lid for lid in self.order if self.shadow[lid].order < 3]
        hung_up = self.meeting.close(reason, now)
        assert [leg.id for leg in hung_up] == live
        for lid in live:
            self.shadow[lid].order = 3
            self.shadow[lid].reason = EndReason.MEETING_ENDED
        self.state = "ended"
        self.expected_close_reason = reason.value

    # ---- invariants ---------------------------------------------------------------------------

    @invariant()
    def legs_match_shadow(self):
        assert [leg.id for leg in self.meeting.legs] == self.order
        for leg in self.meeting.legs:
            shadow = self.shadow[leg.id]
            assert ORDER[leg.state.value] == shadow.order
            assert (leg.answered_at is not None) is shadow.answered
            assert leg.live is (shadow.order < 3)
            assert leg.joined is (shadow.order == 2)
            if shadow.order == 3:
                assert leg.end_reason is shadow.reason
                answered = "应答" if shadow.answered else "未应答"
                assert leg.state_desc == f"{answered}|{shadow.reason.value}"
                assert leg.ended_at is not None
                assert leg.duration_seconds >= 0
            else:
                assert leg.ended_at is None
                assert leg.duration_seconds == 0

    @invariant()
    def live_count_counts_the_live_legs(self):
        # Fullness and emptiness use the counter, so that changes need not load every leg.
        assert self.meeting.live_count == len(self.meeting.live_legs)

    @invariant()
    def meeting_state_matches_shadow(self):
        assert self.meeting.state is MeetingState(self.state)
        if self.state == "ended":
            assert self.meeting.end_reason == self.expected_close_reason
            assert self.meeting.live_legs == []
        if self.state == "active":
            # It would have closed itself.
            assert self.meeting.live_legs or not self.ever_joined()

    @invariant()
    def exactly_one_leg_ended_per_gone_leg(self):
        ended = Counter(e.leg_id for e in self.meeting.events if isinstance(e, LegEnded))
        for leg in self.meeting.legs:
            assert ended[leg.id] == (0 if leg.live else 1)
        assert set(ended) <= set(self.shadow)

    @invariant()
    def per_leg_events_only_move_forward(self):
        seen: dict[str, int] = {}
        for event in self.meeting.events:
            if isinstance(event, LegProgressed):
                rank = ORDER[event.state]
                assert rank < 3
            elif isinstance(event, LegEnded):
                rank = 3
            else:
                continue
            assert seen.get(event.leg_id, -1) < rank
            seen[event.leg_id] = rank

    @invariant()
    def meeting_events_are_well_ordered(self):
        events = self.meeting.events
        closed = [i for i, e in enumerate(events) if isinstance(e, MeetingClosed)]
        started = [i for i, e in enumerate(events) if isinstance(e, MeetingStarted)]
        assert len(started) == (0 if self.meeting.started_at is None else 1)
        assert len(closed) == (1 if self.state == "ended" else 0)
        if closed:
            assert closed[0] == len(events) - 1
        times = [e.at for e in events]
        assert times == sorted(times)

    @invariant()
    def seats_and_phones(self):
        live = [leg.phone for leg in self.meeting.live_legs]
        assert len(live) == len(set(live))
        assert len(live) <= self.meeting.max_members

    @invariant()
    def joined_lookups_agree(self):
        for phone in PHONES:
            joined = [leg for leg in self.meeting.legs if leg.joined and leg.phone == phone]
            assert len(joined) <= 1
            if joined:
                assert self.meeting.joined_member(phone) is joined[0]


MeetingMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestMeetingMachine = MeetingMachine.TestCase
