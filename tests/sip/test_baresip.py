"""The SIP driver against baresip softphones: real audio through the N-1 mixer, and an
extension's digits arriving as RFC 4733 events."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from telemeeting.domain.model import EndReason
from telemeeting.telephony.driver import Progress
from tests.sip.conftest import Route, order
from tests.sip.peers import Baresip, band_levels, read_wav, ready_all, tone_phones

pytestmark = [pytest.mark.timeout(90), pytest.mark.baresip]

TONES = {"alice": 440.0, "bob": 660.0, "carol": 880.0}


async def start_peers(workdir: Path, names: list[str]) -> list[Baresip]:
    return await ready_all(tone_phones(workdir, {name: TONES[name] for name in names}))


def routes_for(peers: list[Baresip]) -> list[Route]:
    return [Route(f"^{peer.name}$", peer.uri) for peer in peers]


async def test_three_peers_hear_each_other_but_not_themselves(workdir, make_engine):
    peers = await start_peers(workdir, list(TONES))
    try:
        engine, reports = await make_engine(routes_for(peers))
        for peer in peers:
            await engine.dial(order(peer.name, leg=peer.name))
        for peer in peers:
            await reports.wait_for(peer.name, Progress.ANSWERED)
        await asyncio.sleep(3.0)
        await engine.end_meeting("m1")
        for peer in peers:
            await peer.wait_event("CALL_CLOSED")
    finally:
        await asyncio.gather(*(peer.stop() for peer in peers))
    for peer in peers:
        heard = read_wav(peer.recording())[4000:]  # skip the first half second
        assert len(heard) > 8000 * 2, f"{peer.name}: only {len(heard)} samples"
        levels = band_levels(heard, list(TONES.values()))
        own = levels[TONES[peer.name]]
        others = [levels[TONES[name]] for name in TONES if name != peer.name]
        print(peer.name, {f: round(v - max(levels.values()), 1) for f, v in levels.items()})
        assert min(others) - own >= 25, f"{peer.name} hears itself: {levels}"
        assert max(others) - min(others) < 10, f"{peer.name}: unbalanced mix {levels}"


async def test_muted_member_is_not_heard(workdir, make_engine):
    peers = await start_peers(workdir, ["alice", "bob", "carol"])
    try:
        engine, reports = await make_engine(routes_for(peers))
        await engine.dial(order("alice", leg="alice"))
        await engine.dial(order("bob", leg="bob"))
        await engine.dial(order("carol", leg="carol"))
        await engine.set_muted("m1", "carol", True)  # before answer: applies at join
        for peer in peers:
            await reports.wait_for(peer.name, Progress.ANSWERED)
        await asyncio.sleep(2.5)
        await engine.end_meeting("m1")
        for peer in peers:
            await peer.wait_event("CALL_CLOSED")
    finally:
        await asyncio.gather(*(peer.stop() for peer in peers))
    alice = band_levels(read_wav(peers[0].recording())[4000:], list(TONES.values()))
    assert alice[880.0] < alice[660.0] - 25, f"alice still hears muted carol: {alice}"
    carol = band_levels(read_wav(peers[2].recording())[4000:], list(TONES.values()))
    assert min(carol[440.0], carol[660.0]) > carol[880.0] + 25, f"muted carol hears: {carol}"


async def test_extension_digits_arrive_in_order_then_member_joins(workdir, make_engine):
    (peer,) = await start_peers(workdir, ["alice"])
    try:
        engine, reports = await make_engine(
            routes_for([peer]), extension_delay_seconds=0.3, dtmf_gap_seconds=0.1
        )
        await engine.dial(order("alice", leg="alice", extension="19#*0"))
        await reports.wait_for("alice", Progress.ANSWERED)
        events = await peer.wait_event("CALL_DTMF_START", count=5, timeout=10)
        assert [e["param"] for e in events] == ["1", "9", "#", "*", "0"]
        await asyncio.sleep(0.2)
        stats = engine.leg_stats("alice")
        assert stats is not None and stats["joined"] and stats["tx_events"] >= 5 * 11
        await engine.end_meeting("m1")
        await peer.wait_event("CALL_CLOSED")
    finally:
        await peer.stop()


async def test_peer_hangs_up(workdir, make_engine):
    (peer,) = await start_peers(workdir, ["bob"])
    try:
        engine, reports = await make_engine(routes_for([peer]))
        await engine.dial(order("bob", leg="bob"))
        await reports.wait_for("bob", Progress.ANSWERED)
        await peer.wait_event("CALL_ESTABLISHED")
        await peer.command("hangup")
        ended = await reports.wait_for("bob", Progress.ENDED)
        assert ended.reason is EndReason.NORMAL
        assert engine.active_legs() == 0
    finally:
        await peer.stop()
