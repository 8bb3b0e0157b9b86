"""Cascading over real sockets: two media "nodes" (a Conference on its own 20 ms clock, an RTP
port pool and its CascadeLinks each) on loopback, opened with the two-step OpenCascade, and
simulated phones that send a tone as PCMU RTP and keep what comes back."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import pytest

from telemeeting.telephony.media import g711, rtp
from telemeeting.telephony.media.cascade_control import (
    CascadeError,
    CascadeLinks,
    CloseCascade,
    OpenCascade,
)
from telemeeting.telephony.media.conference import Conference
from telemeeting.telephony.media.ports import PortPool
from telemeeting.telephony.media.stream import RtpStream
from tests.sip.peers import HOST, band_levels, free_ports

pytestmark = pytest.mark.timeout(60)

MEETING = "m1"
TONES = {"a1": 440.0, "a2": 660.0, "b1": 880.0, "b2": 1100.0}


class Phone(asyncio.DatagramProtocol):
    """Sends a steady tone every 20 ms from its own port; keeps (arrival time, samples)."""

    def __init__(self, frequency: float) -> None:
        self.frequency = frequency
        self.transport: asyncio.DatagramTransport | None = None
        self.target: tuple[str, int] | None = None
        self.heard: list[tuple[float, np.ndarray]] = []
        self._sent = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        packet = rtp.RtpPacket.parse(data)
        if packet is not None and packet.payload_type == g711.PCMU:
            self.heard.append((time.monotonic(), g711.decode(g711.PCMU, packet.payload)))

    def send_frame(self) -> None:
        t = (np.arange(160) + 160 * self._sent) / 8000
        samples = (np.sin(2 * np.pi * self.frequency * t) * 6000).astype(np.int16)
        assert self.transport is not None and self.target is not None
        payload = g711.encode(g711.PCMU, samples)
        self.transport.sendto(rtp.pack(0, self._sent, 160 * self._sent, 7, payload), self.target)
        self._sent += 1

    def levels(self, start: float, end: float) -> dict[str, float]:
        frames = [frame for at, frame in self.heard if start <= at < end]
        assert len(frames) > 40, f"only {len(frames)} frames heard in the window"
        by_frequency = band_levels(np.concatenate(frames).astype(np.float64), list(TONES.values()))
        return {name: by_frequency[f] for name, f in TONES.items()}


@dataclass
class Node:
    name: str
    conference: Conference
    ports: PortPool
    links: CascadeLinks
    streams: list[RtpStream] = field(default_factory=list)


@contextlib.asynccontextmanager
async def running_nodes(names: list[str]) -> AsyncIterator[dict[str, Node]]:
    nodes: dict[str, Node] = {}
    for name in names:
        (base,) = free_ports(1, span=40)
        conference = Conference()
        ports = PortPool(base, base + 39)
        nodes[name] = Node(name, conference, ports, CascadeLinks(conference, ports, HOST))
    clocks = [asyncio.create_task(node.conference.run()) for node in nodes.values()]
    try:
        yield nodes
    finally:
        for clock in clocks:
            clock.cancel()
        for node in nodes.values():
            node.links.close_all()
            for stream in node.streams:
                stream.close()


async def add_phone(node: Node, key: str, phone: Phone) -> None:
    """What the SIP engine does at answer: a leg's RTP stream, pointed at the phone, joined."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: phone, local_addr=(HOST, 0))
    _, stream, port = await node.ports.bind(HOST, RtpStream)
    stream.remote = transport.get_extra_info("sockname")[:2]
    phone.target = (HOST, port)
    node.streams.append(stream)
    node.conference.add(MEETING, key, stream).joined = True


async def link(a: Node, b: Node) -> None:
    """The two-step open placement will do: reserve a's end, open b's towards it, point a."""
    a_end = await a.links.open(OpenCascade(MEETING, b.name, "production"))
    b_end = await b.links.open(OpenCascade(MEETING, a.name, "production", a_end.host, a_end.port))
    again = await a.links.open(OpenCascade(MEETING, b.name, "production", b_end.host, b_end.port))
    assert again.port == a_end.port  # idempotent: the same end, now connected


async def talk(phones: list[Phone], seconds: float) -> None:
    loop = asyncio.get_running_loop()
    due = loop.time()
    for _ in range(int(seconds / 0.02)):
        for phone in phones:
            phone.send_frame()
        due += 0.02
        await asyncio.sleep(max(0.0, due - loop.time()))


def assert_hears(name: str, heard: dict[str, float], present: set[str], absent: set[str]):
    margin = min(heard[n] for n in present) - max(heard[n] for n in absent)
    print(name, {n: round(v - max(heard.values()), 1) for n, v in heard.items()})
    assert margin >= 30, f"{name}: {heard}"


async def test_phones_on_two_nodes_hear_each_other_not_themselves_and_mute_crosses() -> None:
    phones = {name: Phone(f) for name, f in TONES.items()}
    async with running_nodes(["A", "B"]) as nodes:
        a, b = nodes["A"], nodes["B"]
        for name, phone in phones.items():
            await add_phone(a if name[0] == "a" else b, name, phone)
        await link(a, b)
        started = time.monotonic()
        await talk(list(phones.values()), 2.5)
        muted_at = time.monotonic()
        member = b.conference.get(MEETING, "b1")
        assert member is not None
        member.muted = True
        await talk(list(phones.values()), 2.0)
        ended = time.monotonic()
        stats = {s["peer_node"]: s for s in a.links.stats() + b.links.stats()}
        # A stranger's packets to a link's port are refused (read by a later tick: most ticks
        # read one packet a link, so on a busy machine it may wait behind the peer's).
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with stranger:
            loud = g711.encode(g711.PCMU, np.full(160, 8000, np.int16))
            stranger.sendto(rtp.pack(96, 1, 160, 9, loud + loud), (HOST, stats["B"]["port"]))
            deadline = time.monotonic() + 3.0
            while a.links.stats()[0]["rx_refused"] == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        refused = a.links.stats()[0]["rx_refused"]

    everyone = set(TONES)
    for name, phone in phones.items():
        heard = phone.levels(started + 0.5, muted_at)
        assert_hears(name, heard, everyone - {name}, {name})
    for name in ("a1", "a2"):  # b1 muted on node B is silent on node A
        heard = phones[name].levels(muted_at + 0.3, ended)
        assert_hears(f"{name} (b1 muted)", heard, everyone - {name, "b1"}, {name, "b1"})
    assert refused == 1
    for peer in ("A", "B"):  # one packet a tick each way (~225 in 4.5 s)
        assert stats[peer]["rx_packets"] > 150 and stats[peer]["tx_packets"] > 150, stats
        assert stats[peer]["rx_refused"] == 0, stats


async def test_closing_a_link_stops_the_peers_audio_and_frees_its_port() -> None:
    phones = {name: Phone(TONES[name]) for name in ("a1", "b1")}
    async with running_nodes(["A", "B"]) as nodes:
        a, b = nodes["A"], nodes["B"]
        await add_phone(a, "a1", phones["a1"])
        await add_phone(b, "b1", phones["b1"])
        await link(a, b)
        in_use = a.ports.in_use
        await talk(list(phones.values()), 1.5)
        assert a.links.close(CloseCascade(MEETING, "B", "production"))
        assert not a.links.close(CloseCascade(MEETING, "B", "production"))
        closed_at = time.monotonic()
        await talk(list(phones.values()), 1.5)
        ended = time.monotonic()
        assert a.ports.in_use == in_use - 1
        assert a.conference.links == {}
        assert b.links.close_meeting(MEETING) == 1
    frames = [f for at, f in phones["a1"].heard if closed_at + 0.2 <= at < ended]
    assert frames and max(int(np.abs(f).max()) for f in frames) <= 8  # silence: b1 is gone


async def test_open_refuses_a_codec_change_and_a_peer_of_another_family() -> None:
    async with running_nodes(["A"]) as nodes:
        links = nodes["A"].links
        end = await links.open(OpenCascade(MEETING, "B", "production"))
        with pytest.raises(CascadeError, match="close it first"):
            await links.open(OpenCascade(MEETING, "B", "production", codec="PCMU"))
        with pytest.raises(CascadeError, match="IPv4"):
            await links.open(OpenCascade(MEETING, "B", "production", "::1", 4000))
        with pytest.raises(CascadeError, match="peer_host"):
            await links.open(OpenCascade(MEETING, "C", "production", "localhost", 4000))
        assert len(links) == 1  # nothing bound for the refused orders
        again = await links.open(OpenCascade(MEETING, "B", "production", "127.0.0.1", 4000))
        assert again.port == end.port
        assert links.stats()[0]["port"] == end.port


async def test_three_nodes_in_a_mesh_over_sockets_deliver_each_voice_once() -> None:
    """One phone per node, links A-B, B-C, C-A: each phone hears the other two, equally loud
    (a tone forwarded twice would come out louder or combed), and not itself."""
    tones = {"a1": TONES["a1"], "b1": TONES["b1"], "c1": 1320.0}
    phones = {name: Phone(f) for name, f in tones.items()}
    async with running_nodes(["A", "B", "C"]) as nodes:
        for name, phone in phones.items():
            await add_phone(nodes[name[0].upper()], name, phone)
        for first, second in (("A", "B"), ("B", "C"), ("C", "A")):
            await link(nodes[first], nodes[second])
        started = time.monotonic()
        await talk(list(phones.values()), 2.5)
        ended = time.monotonic()
        stats = [s for node in nodes.values() for s in node.links.stats()]
    assert len(stats) == 6 and all(s["rx_packets"] > 80 for s in stats), stats
    for name, phone in phones.items():
        frames = [f for at, f in phone.heard if started + 0.5 <= at < ended]
        samples = np.concatenate(frames).astype(np.float64)
        by_frequency = band_levels(samples, list(tones.values()))
        heard = {n: by_frequency[f] for n, f in tones.items()}
        others = [heard[n] for n in tones if n != name]
        print(name, {n: round(v - max(heard.values()), 1) for n, v in heard.items()})
        assert min(others) - heard[name] >= 30, heard
        assert abs(others[0] - others[1]) < 1.5, heard  # both arrive once, at the same level
