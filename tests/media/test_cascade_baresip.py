"""One meeting on two SIP media engines joined by a cascade link, with real phones: alice and
bob are dialled by node A, carol by node B. Each baresip plays its own tone and records what
it hears; muting carol on node B must silence her on node A's phones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from telemeeting.telephony.driver import Progress
from telemeeting.telephony.media.cascade_control import OpenCascade
from telemeeting.telephony.sip.engine import SipEngine
from tests.sip.conftest import Route, order
from tests.sip.peers import HOST, Baresip, ReportLog, band_levels, free_ports, read_wav, write_tone

pytestmark = [pytest.mark.timeout(120), pytest.mark.baresip]

TONES = {"alice": 440.0, "bob": 660.0, "carol": 880.0}
NODE_OF = {"alice": "A", "bob": "A", "carol": "B"}
RATE = 8000


@pytest.fixture
async def engines(tmp_path: Path) -> AsyncIterator[tuple[dict[str, SipEngine], list[Baresip]]]:
    peers = []
    for name, tone in TONES.items():
        wav = tmp_path / f"{name}.wav"
        write_tone(wav, tone, seconds=30)
        peers.append(Baresip(tmp_path, name, wav))
    nodes: dict[str, SipEngine] = {}
    try:
        await asyncio.gather(*(peer.ready() for peer in peers))
        for node in ("A", "B"):
            (base,) = free_ports(1, span=40)
            routes = [Route(f"^{p.name}$", p.uri) for p in peers if NODE_OF[p.name] == node]
            nodes[node] = SipEngine(
                local_host=HOST,
                local_port=0,
                rtp_port_min=base,
                rtp_port_max=base + 39,
                routes=routes,
            )
            await nodes[node].start()
        yield nodes, peers
    finally:
        for engine in nodes.values():
            await engine.close()
        await asyncio.gather(*(peer.stop() for peer in peers))


def heard(peer: Baresip, start: float, end: float) -> dict[str, float]:
    samples = read_wav(peer.recording())[int(start * RATE) : int(end * RATE)]
    assert len(samples) > RATE, f"{peer.name}: only {len(samples)} samples in the window"
    levels = band_levels(samples, list(TONES.values()))
    return {name: levels[tone] for name, tone in TONES.items()}


def assert_hears(name: str, levels: dict[str, float], present: set[str], absent: set[str]):
    print(name, {n: round(v - max(levels.values()), 1) for n, v in levels.items()})
    margin = min(levels[n] for n in present) - max(levels[n] for n in absent)
    assert margin >= 25, f"{name}: {levels}"


async def test_a_meeting_across_two_engines_with_real_phones(engines) -> None:
    nodes, peers = engines
    a, b = nodes["A"], nodes["B"]
    # Placement's two steps: reserve A's end, open B's towards it, point A's end at B.
    a_end = await a.open_cascade(OpenCascade("m1", "B", "production"))
    b_end = await b.open_cascade(OpenCascade("m1", "A", "production", a_end.host, a_end.port))
    await a.open_cascade(OpenCascade("m1", "B", "production", b_end.host, b_end.port))

    logs = {node: ReportLog() for node in nodes}
    for node, engine in nodes.items():
        engine.attach(logs[node])
    for peer in peers:
        await nodes[NODE_OF[peer.name]].dial(order(peer.name, leg=peer.name))
    answered = {}
    for peer in peers:
        await logs[NODE_OF[peer.name]].wait_for(peer.name, Progress.ANSWERED)
        answered[peer.name] = time.monotonic()
    await asyncio.sleep(3.0)
    muted = time.monotonic()
    await b.set_muted("m1", "carol", True)
    await asyncio.sleep(2.5)
    ended = time.monotonic()
    link_stats = a.cascades.stats() + b.cascades.stats()
    for engine in nodes.values():
        await engine.end_meeting("m1")
    assert len(a.cascades) == len(b.cascades) == 0  # the meeting's end closes its links
    for peer in peers:
        await peer.wait_event("CALL_CLOSED")

    everyone = set(TONES)
    last = max(answered.values())
    for peer in peers:
        # A phone's recording starts at its answer; everyone talks from the last answer on.
        offset = answered[peer.name]
        before = heard(peer, last - offset + 0.7, muted - offset - 0.2)
        assert_hears(peer.name, before, everyone - {peer.name}, {peer.name})
        if NODE_OF[peer.name] == "A":
            after = heard(peer, muted - offset + 0.5, ended - offset - 0.1)
            others = everyone - {peer.name, "carol"}
            assert_hears(f"{peer.name}, carol muted", after, others, {peer.name, "carol"})
    for stats in link_stats:
        assert stats["rx_packets"] > 150 and stats["rx_refused"] == 0, link_stats
