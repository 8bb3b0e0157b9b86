"""One meeting across servers, the store's part (issue 16), on real SQLite and PostgreSQL: a
caller admitted on server B for a meeting server A owns is B's leg; its orders are claimed by B
alone, the meeting's end by both; B's death ends B's leg once and has A close its link. What
the link's audio does not carry: the home's settings reach a server in the link's reply, a join
or leave is a `ServerPresence` for the other servers only, and the speaker events keep the union
of every server's talkers."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

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
from telemeeting.service.speakers import SpeakerEvents
from telemeeting.store.orders import StoredOrder
from telemeeting.store.records import App
from telemeeting.store.repositories import ALL_LEGS
from telemeeting.store.sql import Statement
from telemeeting.store.unit_of_work import Database
from telemeeting.telephony.dialin import AdmitRequest
from telemeeting.telephony.driver import LegReport, Progress, SpeakersReport
from telemeeting.telephony.ivr.machine import Verdict
from telemeeting.telephony.media.cascade_control import CascadeEndpoint
from telemeeting.telephony.orders import (
    ConfigureMeeting,
    DialOrder,
    EndMeeting,
    HangUp,
    LinkServer,
    MediaOrder,
    Order,
    RelinkServer,
    ServerPresence,
    SetMuted,
    UnlinkServer,
    decode,
    encode,
    kind_of,
)
from telemeeting.wire.actions import parse_create_meeting, parse_meeting_ref, parse_member_ref
from telemeeting.wire.request_id import RequestIdGenerator

CALLER = "13900000009"
ALICE = "13800000001"


async def _claimed(db: Database, node: str) -> list[Order]:
    async with db.unit_of_work() as uow:
        stored = await uow.orders.claim(node, 100)
    return [decode(s.kind, s.body) for s in stored]


@dataclass
class _World:
    """The service as the servers run it, at a fixed time, with A as the meeting's owner."""

    db: Database
    now: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.settings = load_settings()
        self.recorder = ChangeRecorder.from_settings(self.settings, Wakeups())
        self.directory = Directory(self.db)
        placement = Placement(self.db, "A", True, 10, self.clock)
        self.service = MeetingService(self.db, self.settings, self.clock, placement, self.recorder)
        self.records = CallRecords(
            self.db, self.clock, self.recorder, self.directory, self.settings
        )

    def clock(self) -> float:
        return self.now

    async def app(self) -> App:
        account = await admin.create_account(self.db)
        return await admin.create_app(self.db, account_sid=account.sid, env="production")

    def dialin(self, node: str) -> DialIn:
        ids = RequestIdGenerator(self.settings.zone)
        return DialIn(self.db, node, self.recorder, self.directory, self.clock, ids)

    async def answered(self, meeting_id: str, *leg_ids: str) -> None:
        reports = [LegReport(meeting_id, leg, Progress.ANSWERED, self.now) for leg in leg_ids]
        await self.records.apply_reports(meeting_id, reports)


@dataclass
class _Spanned:
    """A meeting A owns with alice dialled by A and a caller admitted on B, both answered."""

    world: _World
    app: App
    meid: str
    meeting_id: str
    alice: str
    caller: str


async def _spanned(db: Database, **options: str) -> _Spanned:
    world = _World(db)
    app = await world.app()
    body = {"parties": [{"phone": ALICE}], "dialin": "1", "pin": "2468", **options}
    meid = await world.service.create_meeting(app, parse_create_meeting(body), Acceptance("r1"))
    (dial,) = [o for o in await _claimed(db, "A") if isinstance(o, DialOrder)]
    dialin = world.dialin("B")
    request = AdmitRequest(meid, "2468", CALLER, "4000")
    assert (await dialin.admit(request)).verdict is Verdict.UNAVAILABLE  # spanning off
    dialin.span_servers = True
    admission = await dialin.admit(request)
    assert admission.verdict is Verdict.ADMITTED
    await world.answered(dial.meeting_id, dial.leg_id, admission.leg_id)
    return _Spanned(world, app, meid, dial.meeting_id, dial.leg_id, admission.leg_id)


async def _legs(db: Database, meeting_id: str) -> dict[str, LegState]:
    async with db.reader() as uow:
        meeting = await uow.meetings.get(meeting_id, ALL_LEGS)
    assert meeting is not None
    return {leg.id: leg.state for leg in meeting.legs}


async def test_a_callers_orders_go_to_its_server_and_its_death_ends_it_once(
    db: Database,
) -> None:
    async with db.unit_of_work() as uow:  # two live media servers
        for node in ("A", "B"):
            await uow.nodes.register(node, "media", node, time.time())
    m = await _spanned(db)
    async with db.reader() as uow:  # the admission recorded the span with the leg
        assert await uow.spans.servers(m.meeting_id) == ["B"]

    # The caller's mute is B's alone; A's member's is A's.
    for phone, request_id in ((CALLER, "r2"), (ALICE, "r3")):
        ref = parse_member_ref({"confid": m.meid, "phone": phone})
        await m.world.service.set_muted(m.app, ref, True, Acceptance(request_id))
    async with db.reader() as uow:  # `telemeeting nodes` counts each one's waiting orders
        waiting = {node.id: node.orders for node in await uow.nodes.live(m.world.now - 10)}
    assert waiting == {"A": 1, "B": 1}
    assert await _claimed(db, "B") == [SetMuted(m.meeting_id, m.caller, True, "production")]
    assert await _claimed(db, "A") == [SetMuted(m.meeting_id, m.alice, True, "production")]

    # B dies (its lease ran out): A's sweep ends B's leg once, and A closes its link.
    later = m.world.now + 60
    links = ServerLinks(db, "A", m.world.recorder, m.world.directory, lambda: later)
    async with db.unit_of_work() as uow:
        await uow.nodes.beat("A", later)
    assert await links.sweep(10) == 1
    assert await links.sweep(10) == 0  # nothing left of B: nothing to do again
    assert await links.end_server("B") == 0
    assert await _legs(db, m.meeting_id) == {
        m.alice: LegState.ANSWER,
        m.caller: LegState.DISCONNECT,
    }
    async with db.reader() as uow:
        assert await uow.spans.servers(m.meeting_id) == []
        events = await uow.events.for_meeting(m.meeting_id, 0, 100)
        cdrs = await uow.cdrs.after(m.app.account_sid, "production", 100)
    assert await _claimed(db, "A") == [  # A closes its link, and its members hear the leave
        UnlinkServer(m.meeting_id, "B", "production"),
        ServerPresence(m.meeting_id, m.caller, False, "B", "production"),
    ]
    gone = [e for e in events if e.kind == "CallState" and e.leg_id == m.caller]
    assert sum('"disconnect"' in e.body for e in gone) == 1
    assert cdrs is not None and len(cdrs) == 1


async def test_the_meetings_end_goes_to_every_server_it_spans(db: Database) -> None:
    m = await _spanned(db)
    ref = parse_meeting_ref({"confid": m.meid})
    await m.world.service.destroy_meeting(m.app, ref, Acceptance("r2"))
    assert await _claimed(db, "B") == [
        HangUp(m.meeting_id, m.caller, "production"),
        EndMeeting(m.meeting_id, "production"),
    ]
    home = await _claimed(db, "A")
    assert EndMeeting(m.meeting_id, "production") in home
    assert all(getattr(o, "leg_id", "") != m.caller for o in home)


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
    m = await _spanned(db)
    assert await m.world.records.take_over(m.meeting_id, "A", "C")
    assert await _legs(db, m.meeting_id) == {
        m.alice: LegState.DISCONNECT,
        m.caller: LegState.ANSWER,
    }
    relink = RelinkServer(m.meeting_id, "A", "production")
    to_b = await _claimed(db, "B")  # then the settings, which the new home sends everywhere
    assert to_b[0] == relink and to_b.count(relink) == 1, to_b
    assert relink in await _claimed(db, "C")

    # C dies in turn and B adopts: B, no longer a span of its own meeting, is told once.
    assert await m.world.records.take_over(m.meeting_id, "C", "B")
    moved = RelinkServer(m.meeting_id, "C", "production")
    assert (await _claimed(db, "B")).count(moved) == 1
    async with db.reader() as uow:
        assert await uow.spans.servers(m.meeting_id) == []


async def test_a_restarted_owner_keeps_other_servers_legs_and_has_them_relink(
    db: Database,
) -> None:
    m = await _spanned(db)
    assert await m.world.records.end_lost_calls("A") == 1
    legs = await _legs(db, m.meeting_id)
    assert legs == {m.alice: LegState.DISCONNECT, m.caller: LegState.ANSWER}
    relink = RelinkServer(m.meeting_id, "A", "production")
    assert (await _claimed(db, "B")).count(relink) == 1
    assert (await _claimed(db, "A")).count(relink) == 1


class _Ends:
    """A fake of the SIP driver's link ends (the exchange through the store is what is tested
    here; tests/sip/test_cross_server.py runs it with real workers): it answers every open with
    its own end and remembers what it was asked (its settings are `settings`)."""

    def __init__(self, port: int, settings: ConfigureMeeting | None = None) -> None:
        self.port = port
        self.opened: list[tuple[str, str, str, int, bool]] = []
        self.closed: list[tuple[str, str]] = []
        self.settings = settings
        self.configured: list[MediaOrder] = []
        self.presences: list[tuple[str, str, bool]] = []

    async def open_server_end(
        self, meeting_id: str, server: str, host: str = "", port: int = 0, *, home: bool
    ) -> CascadeEndpoint:
        self.opened.append((meeting_id, server, host, port, home))
        return CascadeEndpoint(meeting_id, server, "127.0.0.1", self.port, "L16")

    def close_server_end(self, meeting_id: str, server: str) -> None:
        self.closed.append((meeting_id, server))

    def meeting_settings(self, meeting_id: str) -> ConfigureMeeting | None:
        return self.settings

    async def media(self, order: MediaOrder) -> None:
        self.configured.append(order)

    def peer_presence(self, meeting_id: str, leg_id: str, joined: bool) -> None:
        self.presences.append((meeting_id, leg_id, joined))


async def _link(db: Database, meeting_id: str, server: ServerLinks, home: ServerLinks) -> None:
    """`server` links the meeting to `home`, whose order loop claims the request and answers."""
    written = asyncio.Event()
    server.wake = written.set  # the request's commit wakes the home (NOTIFY between processes)

    async def answer() -> None:
        await written.wait()
        async with db.unit_of_work() as uow:
            (stored,) = await uow.orders.claim(home.node_id, 10)
        order = decode(stored.kind, stored.body)
        assert isinstance(order, LinkServer) and not order.reply
        await home.on_order(order)

    await asyncio.gather(server.join(meeting_id), answer())


def _links(db: Database, node: str, ends: _Ends, link_seconds: float = 10.0) -> ServerLinks:
    recorder = ChangeRecorder.from_settings(load_settings(), Wakeups())
    links = ServerLinks(db, node, recorder, Directory(db), time.time, link_seconds)
    links.attach(ends)
    return links


async def test_the_link_exchange_goes_through_the_store(db: Database) -> None:
    """B reserves its end and asks A; A points its home at B's end and answers with its own; B
    points its end at A's. Each step is an order addressed to the other server."""
    meeting_id = (await _spanned(db)).meeting_id
    b_ends, a_ends = _Ends(41000), _Ends(42000)
    b, a = _links(db, "B", b_ends), _links(db, "A", a_ends)
    await _link(db, meeting_id, b, a)
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
    meeting_id = (await _spanned(db)).meeting_id
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
    world = _World(db)
    app, service = await world.app(), world.service
    async with db.unit_of_work() as uow:
        for node in ("A", "B", "C"):
            await uow.nodes.register(node, "api,media", node, world.now)
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
    failed = LegReport(second.meeting_id, second.leg_id, Progress.ENDED, world.now)
    await world.records.apply_reports(second.meeting_id, [failed])  # ended meanwhile
    assert await links.overflow(second)  # nothing to dial anywhere
    assert await _claimed(db, "B") == [] and await _claimed(db, "C") == []


async def test_the_homes_reply_gives_a_joining_server_the_meetings_settings(
    db: Database,
) -> None:
    """A server that joins after the meeting's start missed its `ConfigureMeeting`: the home's
    reply carries the one it runs, which the joining server's workers take, unless a newer one
    (addressed to its span) reached it first."""
    meeting_id = (await _spanned(db)).meeting_id
    settings = ConfigureMeeting(meeting_id, "production", beep=3, speaker_events=True)
    b_ends, a_ends = _Ends(41000), _Ends(42000, settings)
    b, a = _links(db, "B", b_ends), _links(db, "A", a_ends)
    await _link(db, meeting_id, b, a)
    assert b_ends.configured == [settings]

    newer = ConfigureMeeting(meeting_id, "production", beep=1)
    c_ends = _Ends(43000, newer)
    await _link(db, meeting_id, _links(db, "C", c_ends), a)
    assert c_ends.configured == []  # C keeps what it runs

    a_ends.settings = None  # a meeting with nothing to set: nothing to take
    d_ends = _Ends(44000)
    await _link(db, meeting_id, _links(db, "D", d_ends), a)
    assert d_ends.configured == []


async def test_a_members_join_or_leave_is_told_to_the_meetings_other_servers(
    db: Database,
) -> None:
    """The beeps across servers: a member joining on B is a `ServerPresence` for the owner A
    and the other span C (not for B); one leaving on the home A is one for B and C. Carried
    out, it makes the driver beep there; a server's own comes back to nothing; a meeting
    that does not span servers here writes none."""
    meeting_id = (await _spanned(db)).meeting_id
    a_ends, b_ends, c_ends = _Ends(42000), _Ends(41000), _Ends(43000)
    a, b, c = _links(db, "A", a_ends), _links(db, "B", b_ends), _links(db, "C", c_ends)
    await _link(db, meeting_id, b, a)
    await _link(db, meeting_id, c, a)

    b.presence(meeting_id, "leg-b", True, home=False)
    await asyncio.gather(*b._tasks)
    joined = ServerPresence(meeting_id, "leg-b", True, "B", "production")
    assert await _claimed(db, "A") == [joined]
    assert await _claimed(db, "C") == [joined]
    assert await _claimed(db, "B") == []

    a.presence(meeting_id, "leg-a", False, home=True)
    await asyncio.gather(*a._tasks)
    left = ServerPresence(meeting_id, "leg-a", False, "A", "production")
    assert await _claimed(db, "B") == [left]
    assert await _claimed(db, "C") == [left]
    assert await _claimed(db, "A") == []

    await c.on_order(joined)
    await b.on_order(joined)  # its own: B's workers beeped already
    assert c_ends.presences == [(meeting_id, "leg-b", True)]
    assert b_ends.presences == []

    elsewhere = _links(db, "D", _Ends(44000))  # D carries no part of the meeting
    elsewhere.presence(meeting_id, "leg-d", True, home=False)
    a.presence(meeting_id, "leg-a", True, home=False)  # the owner, no server linked to it
    await asyncio.gather(*elsewhere._tasks, *a._tasks)
    for node in ("A", "B", "C", "D"):
        assert await _claimed(db, node) == []

    # B's part ends with its last member, whose leave the driver learns after that end: it
    # still reaches the others.
    b.ended_here(meeting_id)
    b.presence(meeting_id, "leg-b", False, home=False)
    await asyncio.gather(*b._tasks)
    gone = ServerPresence(meeting_id, "leg-b", False, "B", "production")
    assert gone in await _claimed(db, "A")
    assert await _claimed(db, "C") == [gone]


async def test_speaker_events_name_the_talkers_of_every_server(db: Database) -> None:
    """A and B each report their own talkers: the pushes and queryMeeting's `speaking` name
    the union; a server repeating its set changes nothing (no push, no flapping), and a dead
    server's talkers leave with its legs."""
    m = await _spanned(db, speakerevents="1")
    world = m.world
    on_a = SpeakerEvents(db, world.recorder, world.clock, "A")
    on_b = SpeakerEvents(db, world.recorder, world.clock, "B")

    async def pushed() -> list[list[str]]:
        async with db.reader() as uow:
            events = await uow.events.for_meeting(m.meeting_id, 0, 1000)
        bodies = [json.loads(e.body) for e in events if e.kind == "MeetingState"]
        return [sorted(b["speakers"]) for b in bodies if b["state"] == "speakers"]

    async def speaking() -> set[str]:
        async with db.reader() as uow:
            read = await uow.meetings.read_with_media(m.app.appid, m.meid)
        assert read is not None and read.talking is not None
        return {leg.phone for leg in read.meeting.legs if leg.id in read.talking}

    at = world.now
    await on_a.record(SpeakersReport(m.meeting_id, (m.alice,), at + 1))
    await on_b.record(SpeakersReport(m.meeting_id, (m.caller,), at + 2))
    assert await speaking() == {ALICE, CALLER}
    await on_a.record(SpeakersReport(m.meeting_id, (m.alice,), at + 3))  # the same again
    await on_b.record(SpeakersReport(m.meeting_id, (m.caller,), at + 4))
    await on_a.record(SpeakersReport(m.meeting_id, (), at + 5))  # alice stops
    assert await pushed() == [[ALICE], sorted([ALICE, CALLER]), [CALLER]]
    assert await speaking() == {CALLER}

    await on_a.record(SpeakersReport(m.meeting_id, (m.alice,), at + 6))
    assert (await pushed())[-1] == sorted([ALICE, CALLER])

    # B dies with the caller talking: its report never comes; the sweep that ends its leg
    # reports for it (nobody talks on B), leaving alice.
    links = _links(db, "A", _Ends(42000))
    links.speakers = on_a
    assert await links.end_server("B") == 1
    assert (await pushed())[-1] == [ALICE]
    assert await speaking() == {ALICE}
