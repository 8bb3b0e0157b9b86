"""One meeting across servers, the store's part (issue 16), on real SQLite and PostgreSQL: a
caller admitted on server B for a meeting server A owns is B's leg; its orders are claimed by B
alone, the meeting's end by both; B's death ends B's leg once and has A close its link."""

from __future__ import annotations

import asyncio
import time

import pytest

from telemeeting.config import load_settings
from telemeeting.domain.model import LegState
from telemeeting.service import admin
from telemeeting.service.acceptance import Acceptance
from telemeeting.service.calls import CallRecords
from telemeeting.service.changes import ChangeRecorder, Wakeups
from telemeeting.service.dialin import DialIn
from telemeeting.service.directory import Directory
from telemeeting.service.meetings import MeetingService
from telemeeting.service.placement import Placement
from telemeeting.service.spans import LinkFailed, ServerLinks
from telemeeting.store.orders import StoredOrder
from telemeeting.store.repositories import ALL_LEGS
from telemeeting.store.sql import Statement
from telemeeting.store.unit_of_work import Database
from telemeeting.telephony.dialin import AdmitRequest
from telemeeting.telephony.driver import LegReport, Progress
from telemeeting.telephony.ivr.machine import Verdict
from telemeeting.telephony.media.cascade_control import CascadeEndpoint
from telemeeting.telephony.orders import (
    DialOrder,
    EndMeeting,
    HangUp,
    LinkServer,
    Order,
    RelinkServer,
    SetMuted,
    UnlinkServer,
    decode,
    encode,
    kind_of,
)
from telemeeting.wire.actions import parse_create_meeting, parse_meeting_ref, parse_member_ref
from telemeeting.wire.request_id import RequestIdGenerator

CALLER = "13900000009"


async def _claimed(db: Database, node: str) -> list[Order]:
    async with db.unit_of_work() as uow:
        stored = await uow.orders.claim(node, 100)
    return [decode(s.kind, s.body) for s in stored]


async def test_a_callers_orders_go_to_its_server_and_its_death_ends_it_once(
    db: Database,
) -> None:
    settings = load_settings()
    now = time.time()
    clock = lambda: now  # noqa: E731
    account = await admin.create_account(db)
    app = await admin.create_app(db, account_sid=account.sid, env="production")
    async with db.unit_of_work() as uow:  # two live media servers
        for node in ("A", "B"):
            await uow.nodes.register(node, "media", node, now)
    recorder = ChangeRecorder.from_settings(settings, Wakeups())
    directory = Directory(db)
    placement = Placement(db, "A", True, 10, clock)
    service = MeetingService(db, settings, clock, placement, recorder)
    meid = await service.create_meeting(
        app,
        parse_create_meeting({"parties": [{"phone": "13800000001"}], "dialin": "1", "pin": "2468"}),
        Acceptance("r1"),
    )
    assert {type(o) for o in await _claimed(db, "B")} == set()
    (dial,) = [o for o in await _claimed(db, "A") if isinstance(o, DialOrder)]

    dialin = DialIn(db, "B", recorder, directory, clock, RequestIdGenerator(settings.zone))
    request = AdmitRequest(meid, "2468", CALLER, "4000")
    assert (await dialin.admit(request)).verdict is Verdict.UNAVAILABLE  # spanning off
    dialin.span_servers = True
    admission = await dialin.admit(request)
    assert admission.verdict is Verdict.ADMITTED
    records = CallRecords(db, clock, recorder, directory, settings)
    for leg_id in (dial.leg_id, admission.leg_id):
        report = LegReport(admission.meeting_id, leg_id, Progress.ANSWERED, now)
        await records.apply_reports(admission.meeting_id, [report])
    async with db.reader() as uow:  # the admission recorded the span with the leg
        assert await uow.spans.servers(admission.meeting_id) == ["B"]

    # The caller's mute is B's alone; A's member's is A's.
    ref = parse_member_ref({"confid": meid, "phone": CALLER})
    await service.set_muted(app, ref, True, Acceptance("r2"))
    ref = parse_member_ref({"confid": meid, "phone": "13800000001"})
    await service.set_muted(app, ref, True, Acceptance("r3"))
    async with db.reader() as uow:  # `telemeeting nodes` counts each one's waiting orders
        waiting = {node.id: node.orders for node in await uow.nodes.live(now - 10)}
    assert waiting == {"A": 1, "B": 1}
    assert await _claimed(db, "B") == [
        SetMuted(admission.meeting_id, admission.leg_id, True, "production")
    ]
    assert await _claimed(db, "A") == [
        SetMuted(admission.meeting_id, dial.leg_id, True, "production")
    ]

    # B dies (its lease ran out): A's sweep ends B's leg once, and A closes its link.
    links = ServerLinks(db, "A", recorder, directory, lambda: now + 60)
    async with db.unit_of_work() as uow:
        await uow.nodes.beat("A", now + 60)
    assert await links.sweep(10) == 1
    assert await links.sweep(10) == 0  # nothing left of B: nothing to do again
    assert await links.end_server("B") == 0
    async with db.reader() as uow:
        meeting = await uow.meetings.get(admission.meeting_id, ALL_LEGS)
        assert await uow.spans.servers(admission.meeting_id) == []
    assert meeting is not None
    states = {leg.id: leg.state for leg in meeting.legs}
    assert states == {dial.leg_id: LegState.ANSWER, admission.leg_id: LegState.DISCONNECT}
    assert await _claimed(db, "A") == [UnlinkServer(admission.meeting_id, "B", "production")]
    async with db.reader() as uow:
        events = await uow.events.for_meeting(admission.meeting_id, 0, 100)
    gone = [e for e in events if e.kind == "CallState" and e.leg_id == admission.leg_id]
    assert sum('"disconnect"' in e.body for e in gone) == 1
    async with db.reader() as uow:
        cdrs = await uow.cdrs.after(account.sid, "production", 100)
    assert cdrs is not None and len(cdrs) == 1


async def test_the_meetings_end_goes_to_every_server_it_spans(db: Database) -> None:
    settings = load_settings()
    now = time.time()
    clock = lambda: now  # noqa: E731
    account = await admin.create_account(db)
    app = await admin.create_app(db, account_sid=account.sid, env="production")
    recorder = ChangeRecorder.from_settings(settings, Wakeups())
    service = MeetingService(db, settings, clock, Placement(db, "A", True, 10, clock), recorder)
    meid = await service.create_meeting(
        app,
        parse_create_meeting({"parties": [{"phone": "13800000001"}], "dialin": "1", "pin": "1357"}),
        Acceptance("r1"),
    )
    await _claimed(db, "A")
    dialin = DialIn(db, "B", recorder, Directory(db), clock, RequestIdGenerator(settings.zone))
    dialin.span_servers = True
    admission = await dialin.admit(AdmitRequest(meid, "1357", CALLER, "4000"))
    await service.destroy_meeting(app, parse_meeting_ref({"confid": meid}), Acceptance("r2"))
    mine = await _claimed(db, "B")
    assert mine == [
        HangUp(admission.meeting_id, admission.leg_id, "production"),
        EndMeeting(admission.meeting_id, "production"),
    ]
    home = await _claimed(db, "A")
    assert EndMeeting(admission.meeting_id, "production") in home
    assert all(getattr(o, "leg_id", "") != admission.leg_id for o in home)


async def test_a_server_waiting_for_a_link_claims_only_its_reply(db: Database) -> None:
    """While B's order loop waits for the home's reply (a dial handed over is carried out in
    it), B claims that reply alone; its other orders stay for the loop, in order."""
    now = time.time()
    reply = LinkServer("m1", "A", "production", "127.0.0.1", 40000, "L16", reply=True)
    other = SetMuted("m1", "leg", True, "production")
    elsewhere = LinkServer("m2", "A", "production", "127.0.0.1", 40002, "L16", reply=True)
    async with db.unit_of_work() as uow:
        await uow.orders.add(
            [
                StoredOrder(0, o.meeting_id, kind_of(o), encode(o), "B")
                for o in (other, reply, elsewhere)
            ],
            now,
        )
    async with db.unit_of_work() as uow:
        assert await uow.orders.claim_addressed("A", "m1", "link_server") == []
        (found,) = await uow.orders.claim_addressed("B", "m1", "link_server")
    assert decode(found.kind, found.body) == reply
    async with db.unit_of_work() as uow:
        left = await uow.orders.for_meeting("m1") + await uow.orders.for_meeting("m2")
    assert [decode(o.kind, o.body) for o in left] == [other, elsewhere]


async def test_a_take_over_keeps_the_legs_other_servers_carry_and_relinks_them(
    db: Database,
) -> None:
    """The owner A dies with alice's leg and the caller's (carried by B): the adopter ends
    alice's once, keeps the caller's, and tells B and itself that the home moved."""
    settings = load_settings()
    now = time.time()
    clock = lambda: now  # noqa: E731
    account = await admin.create_account(db)
    app = await admin.create_app(db, account_sid=account.sid, env="production")
    recorder = ChangeRecorder.from_settings(settings, Wakeups())
    directory = Directory(db)
    service = MeetingService(db, settings, clock, Placement(db, "A", True, 10, clock), recorder)
    body = {"parties": [{"phone": "13800000001"}], "dialin": "1", "pin": "2468"}
    meid = await service.create_meeting(app, parse_create_meeting(body), Acceptance("r1"))
    (dial,) = [o for o in await _claimed(db, "A") if isinstance(o, DialOrder)]
    dialin = DialIn(db, "B", recorder, directory, clock, RequestIdGenerator(settings.zone))
    dialin.span_servers = True
    admission = await dialin.admit(AdmitRequest(meid, "2468", CALLER, "4000"))
    records = CallRecords(db, clock, recorder, directory, settings)
    for leg_id in (dial.leg_id, admission.leg_id):
        report = LegReport(admission.meeting_id, leg_id, Progress.ANSWERED, now)
        await records.apply_reports(admission.meeting_id, [report])

    assert await records.take_over(admission.meeting_id, "A", "C")
    async with db.reader() as uow:
        meeting = await uow.meetings.get(admission.meeting_id, ALL_LEGS)
    assert meeting is not None
    states = {leg.id: leg.state for leg in meeting.legs}
    assert states == {dial.leg_id: LegState.DISCONNECT, admission.leg_id: LegState.ANSWER}
    relink = RelinkServer(admission.meeting_id, "A", "production")
    to_b = await _claimed(db, "B")  # then the settings, which the new home sends everywhere
    assert to_b[0] == relink and to_b.count(relink) == 1, to_b
    assert relink in await _claimed(db, "C")

    # C dies in turn and B adopts: B, no longer a span of its own meeting, is told once.
    assert await records.take_over(admission.meeting_id, "C", "B")
    moved = RelinkServer(admission.meeting_id, "C", "production")
    assert (await _claimed(db, "B")).count(moved) == 1
    async with db.reader() as uow:
        assert await uow.spans.servers(admission.meeting_id) == []


class _Ends:
    """A fake of the SIP driver's link ends (the exchange through the store is what is tested
    here; tests/sip/test_cross_server.py runs it with real workers): it answers every open with
    its own end and remembers what it was asked."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.opened: list[tuple[str, str, str, int, bool]] = []
        self.closed: list[tuple[str, str]] = []

    async def open_server_end(
        self, meeting_id: str, server: str, host: str = "", port: int = 0, *, home: bool
    ) -> CascadeEndpoint:
        self.opened.append((meeting_id, server, host, port, home))
        return CascadeEndpoint(meeting_id, server, "127.0.0.1", self.port, "L16")

    def close_server_end(self, meeting_id: str, server: str) -> None:
        self.closed.append((meeting_id, server))


async def _meeting_with_caller_on_b(db: Database) -> tuple[str, str, float]:
    """A meeting A owns, with a caller admitted on B: (meeting id, leg id, now)."""
    settings = load_settings()
    now = time.time()
    clock = lambda: now  # noqa: E731
    account = await admin.create_account(db)
    app = await admin.create_app(db, account_sid=account.sid, env="production")
    recorder = ChangeRecorder.from_settings(settings, Wakeups())
    service = MeetingService(db, settings, clock, Placement(db, "A", True, 10, clock), recorder)
    body = {"parties": [{"phone": "13800000001"}], "dialin": "1", "pin": "2468"}
    meid = await service.create_meeting(app, parse_create_meeting(body), Acceptance("r1"))
    await _claimed(db, "A")
    dialin = DialIn(db, "B", recorder, Directory(db), clock, RequestIdGenerator(settings.zone))
    dialin.span_servers = True
    admission = await dialin.admit(AdmitRequest(meid, "2468", CALLER, "4000"))
    return admission.meeting_id, admission.leg_id, now


def _links(db: Database, node: str, ends: _Ends, link_seconds: float = 10.0) -> ServerLinks:
    recorder = ChangeRecorder.from_settings(load_settings(), Wakeups())
    links = ServerLinks(db, node, recorder, Directory(db), time.time, link_seconds)
    links.attach(ends)
    return links


async def test_the_link_exchange_goes_through_the_store(db: Database) -> None:
    """B reserves its end and asks A; A points its home at B's end and answers with its own; B
    points its end at A's. Each step is an order addressed to the other server."""
    meeting_id, _, _ = await _meeting_with_caller_on_b(db)
    b_ends, a_ends = _Ends(41000), _Ends(42000)
    b, a = _links(db, "B", b_ends), _links(db, "A", a_ends)

    written = asyncio.Event()
    b.wake = written.set  # B's commit of its request wakes "A" (NOTIFY between processes)

    async def home() -> None:  # A's order loop: claims B's request, answers it
        await written.wait()
        async with db.unit_of_work() as uow:
            (stored,) = await uow.orders.claim("A", 10)
        order = decode(stored.kind, stored.body)
        assert isinstance(order, LinkServer) and not order.reply
        await a.on_order(order)

    await asyncio.gather(b.join(meeting_id), home())
    assert a_ends.opened == [(meeting_id, "B", "127.0.0.1", 41000, True)]
    assert b_ends.opened == [
        (meeting_id, "A", "", 0, False),
        (meeting_id, "A", "127.0.0.1", 42000, False),
    ]
    async with db.reader() as uow:
        assert await uow.spans.servers(meeting_id) == ["B"]
    await b.join(meeting_id)  # linked already: nothing more
    assert len(b_ends.opened) == 2

    b.ended_here(meeting_id)  # B's part is over: its span goes, A is told to close its end
    await asyncio.gather(*b._tasks)
    async with db.reader() as uow:
        assert await uow.spans.servers(meeting_id) == []
    assert await _claimed(db, "A") == [UnlinkServer(meeting_id, "B", "production")]


async def test_a_home_that_does_not_answer_refuses_the_caller_in_time(db: Database) -> None:
    meeting_id, _, _ = await _meeting_with_caller_on_b(db)
    ends = _Ends(41000)
    b = _links(db, "B", ends, link_seconds=0.5)
    began = time.monotonic()
    with pytest.raises(LinkFailed):
        await b.join(meeting_id)
    assert 0.5 <= time.monotonic() - began < 3.0
    assert ends.closed == [(meeting_id, "A")]
    async with db.reader() as uow:
        assert await uow.spans.servers(meeting_id) == []  # no orders for B's part any more


async def test_an_overflowing_dial_goes_to_the_least_loaded_other_server(db: Database) -> None:
    """A's workers are full: the dial goes to C (fewer calls than B), with the leg's server and
    C's span; a dial whose leg has ended meanwhile (a hang-up recorded first) goes nowhere."""
    settings = load_settings()
    now = time.time()
    clock = lambda: now  # noqa: E731
    account = await admin.create_account(db)
    app = await admin.create_app(db, account_sid=account.sid, env="production")
    recorder = ChangeRecorder.from_settings(settings, Wakeups())
    service = MeetingService(db, settings, clock, Placement(db, "A", True, 10, clock), recorder)
    async with db.unit_of_work() as uow:
        for node in ("A", "B", "C"):
            await uow.nodes.register(node, "api,media", node, now)
    busy = {"parties": [{"phone": "13800000009"}]}
    busy_meid = await service.create_meeting(app, parse_create_meeting(busy), Acceptance("r0"))
    body = {"parties": [{"phone": "13800000001"}, {"phone": "13800000002"}]}
    meid = await service.create_meeting(app, parse_create_meeting(body), Acceptance("r1"))
    async with db.unit_of_work() as uow:  # B has a call of its own; A owns the full meeting
        owners = Statement("UPDATE meetings SET owner = :owner WHERE meid = :meid")
        await uow.connection.execute(owners, {"owner": "B", "meid": busy_meid})
        await uow.connection.execute(owners, {"owner": "A", "meid": meid})
    dials = [o for o in await _claimed(db, "A") if isinstance(o, DialOrder)]
    first, second = [d for d in dials if d.number in ("13800000001", "13800000002")]
    await _claimed(db, "B")
    links = _links(db, "A", _Ends(42000))

    assert await links.overflow(first)
    (handed,) = await _claimed(db, "C")
    assert handed == DialOrder(**{**vars(first), "home": "A"})
    async with db.reader() as uow:
        assert await uow.spans.servers(first.meeting_id) == ["C"]
        assert await uow.meetings.get(first.meeting_id, ALL_LEGS) is not None
        assert uow.meetings.node_of_leg(first.leg_id) == "C"  # its orders go to C now
    records = CallRecords(db, clock, recorder, Directory(db), settings)
    failed = LegReport(second.meeting_id, second.leg_id, Progress.ENDED, now)
    await records.apply_reports(second.meeting_id, [failed])  # ended meanwhile
    assert await links.overflow(second)  # nothing to dial anywhere
    assert await _claimed(db, "B") == [] and await _claimed(db, "C") == []


async def test_a_restarted_owner_keeps_other_servers_legs_and_has_them_relink(
    db: Database,
) -> None:
    meeting_id, leg_id, now = await _meeting_with_caller_on_b(db)
    settings = load_settings()
    recorder = ChangeRecorder.from_settings(settings, Wakeups())
    records = CallRecords(db, lambda: now, recorder, Directory(db), settings)
    await records.apply_reports(meeting_id, [LegReport(meeting_id, leg_id, Progress.ANSWERED, now)])
    assert await records.end_lost_calls("A") == 1
    async with db.reader() as uow:
        meeting = await uow.meetings.get(meeting_id, ALL_LEGS)
    assert meeting is not None
    assert {leg.id: leg.live for leg in meeting.legs}[leg_id]  # the caller on B goes on
    relink = RelinkServer(meeting_id, "A", "production")
    assert (await _claimed(db, "B")).count(relink) == 1
    assert (await _claimed(db, "A")).count(relink) == 1
