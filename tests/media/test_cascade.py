"""Cascading (issue 16) without sockets: conferences of two or three "nodes" stepped tick by
tick, their links joined in memory through the real encoding and jitter buffer. Each member
plays its own tone, so what anyone hears is read off a spectrum."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from telemeeting.telephony.media import cascade, g711
from telemeeting.telephony.media.cascade import CascadeStream
from telemeeting.telephony.media.cascade_control import (
    CascadeError,
    CloseCascade,
    OpenCascade,
    validate,
)
from telemeeting.telephony.media.conference import Conference
from telemeeting.telephony.media.mixer import mix_rooms_and_sums
from telemeeting.telephony.media.recorder import read_wav_samples
from telemeeting.telephony.media.synthetic import SyntheticStream
from tests.sip.peers import band_levels

ROOM = "m1"
LEVEL = 6000.0
#: Frames analysed: the last 2 s of each run (the links need a few ticks to fill).
TAIL = 100


class ToneStream:
    """A member that says a steady tone (as PCMU) and keeps everything it hears."""

    payload_type = g711.PCMU

    def __init__(self, frequency: float) -> None:
        self.frequency = frequency
        self._frame = 0
        self.heard: list[np.ndarray] = []

    def enter_room(self) -> None: ...

    def drain(self, limit: int = 8) -> None: ...

    def read_payload(self) -> tuple[int, bytes] | None:
        t = (np.arange(160) + 160 * self._frame) / 8000
        self._frame += 1
        samples = (np.sin(2 * np.pi * self.frequency * t) * LEVEL).astype(np.int16)
        return g711.PCMU, g711.encode(g711.PCMU, samples)

    def write_payload(self, payload: bytes | None) -> None:
        frame = g711.decode(g711.PCMU, payload) if payload else np.zeros(160, np.int16)
        self.heard.append(frame)

    def tail(self) -> np.ndarray:
        return np.concatenate(self.heard[-TAIL:]).astype(np.float64)


class MemoryLink(CascadeStream):
    """A link end whose packets go straight into the peer end's jitter buffer (encoded and
    decoded as on the wire); it keeps what it sent for inspection."""

    def __init__(self, codec: str = cascade.L16) -> None:
        super().__init__(codec)
        self.peer: MemoryLink | None = None
        self.sent: list[np.ndarray] = []
        self._seq = 0

    def write_frame(self, frame: np.ndarray) -> None:
        self.sent.append(frame.copy())
        assert self.peer is not None
        self.peer.jitter.put(self._seq, cascade.encode(self.codec, frame))
        self._seq += 1

    def sent_tail(self) -> np.ndarray:
        return np.concatenate(self.sent[-TAIL:]).astype(np.float64)


def connect(a: Conference, a_name: str, b: Conference, b_name: str, codec: str = cascade.L16):
    """Link `a` (node a_name) and `b` (node b_name) for ROOM; the two ends (a's, b's)."""
    a_end, b_end = MemoryLink(codec), MemoryLink(codec)
    a_end.peer, b_end.peer = b_end, a_end
    a.link(ROOM, b_name, a_end)
    b.link(ROOM, a_name, b_end)
    return a_end, b_end


def add(conference: Conference, key: str, stream) -> None:
    conference.add(ROOM, key, stream).joined = True


def run(nodes: list[Conference], ticks: int = 150) -> None:
    for _ in range(ticks):
        for node in nodes:
            node.tick()


def levels(samples: np.ndarray, tones: dict[str, float]) -> dict[str, float]:
    by_frequency = band_levels(samples, list(tones.values()))
    return {name: by_frequency[f] for name, f in tones.items()}


def assert_hears(name: str, heard: dict[str, float], present: set[str], absent: set[str]):
    """Everyone in `present` clearly audible; everyone in `absent` at least 40 dB below."""
    loudest_absent = max((heard[n] for n in absent), default=-1e9)
    quietest_present = min(heard[n] for n in present)
    assert quietest_present - loudest_absent >= 40, f"{name}: {heard}"


TONES = {"a1": 400.0, "a2": 600.0, "b1": 800.0, "b2": 1000.0, "c1": 1200.0}


def two_nodes() -> tuple[Conference, Conference, dict[str, ToneStream]]:
    """Node A with phones a1 and a2, node B with b1 and b2, each playing its own tone (not yet
    linked: the test connects them)."""
    a, b = Conference(), Conference()
    phones = {name: ToneStream(f) for name, f in TONES.items() if name[0] in "ab"}
    for name, phone in phones.items():
        add(a if name[0] == "a" else b, name, phone)
    return a, b, phones


def test_every_member_hears_everyone_else_across_two_nodes() -> None:
    a, b, phones = two_nodes()
    a_to_b, b_to_a = connect(a, "A", b, "B")
    run([a, b])
    tones = {n: TONES[n] for n in phones}
    for name, phone in phones.items():
        assert_hears(name, levels(phone.tail(), tones), set(phones) - {name}, {name})
    # One stream each way, carrying only the sender's own members.
    assert_hears("A->B", levels(a_to_b.sent_tail(), tones), {"a1", "a2"}, {"b1", "b2"})
    assert_hears("B->A", levels(b_to_a.sent_tail(), tones), {"b1", "b2"}, {"a1", "a2"})
    assert len(a_to_b.sent) == len(b_to_a.sent) == 150  # one frame a tick, not one a member


def test_three_nodes_in_a_mesh_do_not_echo() -> None:
    """Each link carries only its sender's local sum, so every tone arrives exactly once:
    as loud as in a single-node meeting (an echo would double it or comb it)."""
    a, b, c = Conference(), Conference(), Conference()
    node_of = {"a1": a, "b1": b, "c1": c}
    tones = {n: TONES[n] for n in node_of}
    phones = {name: ToneStream(tones[name]) for name in node_of}
    for name, phone in phones.items():
        add(node_of[name], name, phone)
    ab, _ = connect(a, "A", b, "B")
    bc, _ = connect(b, "B", c, "C")
    ca, _ = connect(c, "C", a, "A")
    run([a, b, c])

    single = Conference()
    reference = {name: ToneStream(tones[name]) for name in tones}
    for name, phone in reference.items():
        add(single, name, phone)
    run([single])

    for name, phone in phones.items():
        heard = levels(phone.tail(), tones)
        assert_hears(name, heard, set(tones) - {name}, {name})
        expected = levels(reference[name].tail(), tones)
        for other in set(tones) - {name}:
            assert abs(heard[other] - expected[other]) < 1.0, (name, other, heard, expected)
    for end, own in ((ab, "a1"), (bc, "b1"), (ca, "c1")):
        assert_hears(f"link of {own}", levels(end.sent_tail(), tones), {own}, set(tones) - {own})


def test_muted_and_held_members_are_not_sent_to_other_nodes() -> None:
    a, b, phones = two_nodes()
    _, b_to_a = connect(a, "A", b, "B")
    member = b.get(ROOM, "b1")
    assert member is not None
    member.muted = True
    b.hold(ROOM, "b2", True)
    run([a, b])
    tones = {n: TONES[n] for n in phones}
    for name in ("a1", "a2"):
        heard = levels(phones[name].tail(), tones)
        others = {"a1", "a2"} - {name}
        assert_hears(name, heard, others, {name, "b1", "b2"})
    # Nothing of B's members leaves B; the muted member still hears everyone but itself.
    assert np.abs(b_to_a.sent_tail()).max() == 0
    assert_hears("b1", levels(phones["b1"].tail(), tones), {"a1", "a2"}, {"b1", "b2"})
    member.muted = False
    run([a, b])
    assert_hears("a1", levels(phones["a1"].tail(), tones), {"a2", "b1"}, {"a1", "b2"})


def test_the_home_nodes_recording_holds_the_full_mix(tmp_path: Path) -> None:
    a, b, phones = two_nodes()
    connect(a, "A", b, "B")
    a.start_recording(ROOM, "r1", tmp_path / "r1.wav")
    run([a, b])
    recorder = a.stop_recording(ROOM)
    assert recorder is not None
    samples = read_wav_samples(tmp_path / "r1.wav")[-TAIL * 160 :].astype(np.float64)
    heard = levels(samples, {n: TONES[n] for n in phones})
    assert max(heard.values()) - min(heard.values()) < 1.0, heard  # all four, equally loud


def test_a_node_without_local_members_still_records_and_sends_silence(tmp_path: Path) -> None:
    """The meeting's home may have no member left: it still records the other node's audio."""
    home, other = Conference(), Conference()
    phone = ToneStream(TONES["b1"])
    add(other, "b1", phone)
    home_end, _ = connect(home, "A", other, "B")
    home.start_recording(ROOM, "r1", tmp_path / "r1.wav")
    run([home, other])
    home.stop_recording(ROOM)
    samples = read_wav_samples(tmp_path / "r1.wav")[-TAIL * 160 :].astype(np.float64)
    assert levels(samples, {"b1": TONES["b1"]})["b1"] > 100
    assert np.abs(home_end.sent_tail()).max() == 0
    assert len(home_end.sent) == 150


def test_links_are_closed_and_rooms_forget_them() -> None:
    a = Conference()
    add(a, "a1", ToneStream(TONES["a1"]))
    end = MemoryLink()
    end.peer = MemoryLink()
    a.link(ROOM, "B", end)
    a.tick()
    assert len(end.sent) == 1
    assert a.unlink(ROOM, "B") is end
    assert a.links == {}
    assert a.unlink(ROOM, "B") is None
    a.tick()
    assert len(end.sent) == 1


def _snr(reference: np.ndarray, signal: np.ndarray) -> float:
    error = signal - reference
    return float(10 * np.log10(np.sum(reference**2) / max(np.sum(error**2), 1e-9)))


@pytest.mark.parametrize("codec", [cascade.L16, cascade.PCMU])
def test_link_codec_round_trip(codec: str) -> None:
    frame = (np.sin(np.arange(160) / 5) * 12000).astype(np.int16)
    payload = cascade.encode(codec, frame)
    assert len(payload) == (320 if codec == cascade.L16 else 160)
    back = cascade.decode(codec, payload)
    if codec == cascade.L16:
        assert np.array_equal(back, frame)
    else:
        assert _snr(frame.astype(float), back.astype(float)) > 30


def _heard_by_a1(codec: str, ticks: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """a1 (node A, silent) listening to a2 beside it and three talkers on node B: what a1
    heard, and the exact sum of what they said, as floats over the same ticks (B's part
    aligned on the link's delay)."""
    a, b = Conference(), Conference()
    listener = ToneStream(300.0)
    listener.read_payload = lambda: None  # type: ignore[method-assign]  # a1 says nothing
    add(a, "a1", listener)
    local = _Recorded("a2")
    add(a, "a2", local)
    talkers = [_Recorded(name) for name in ("b1", "b2", "b3")]
    for talker in talkers:
        add(b, talker.key, talker)
    connect(a, "A", b, "B", codec)
    run([a, b], ticks)
    near = np.array(local.said, np.float64)
    far = sum(np.array(t.said, np.float64) for t in talkers)
    heard = np.array(listener.heard, np.float64)

    def said(delay: int) -> np.ndarray:
        return near[100:] + far[100 - delay : len(far) - delay]

    best = max(range(1, 6), key=lambda d: _snr(said(d), heard[100:]))
    return heard[100:].ravel(), said(best).ravel()


class _Recorded(SyntheticStream):
    """A synthetic voice that keeps what it said (as decoded samples)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key
        self.said: list[np.ndarray] = []

    def read_payload(self) -> tuple[int, bytes] | None:
        item = super().read_payload()
        assert item is not None
        self.said.append(g711.decode(g711.PCMU, item[1]))
        return item


def test_l16_links_add_no_noise_and_g711_links_do() -> None:
    """Why the link is L16: what a member hears of another node's talkers is quantised once
    (to the phone) with L16, twice with G.711 (the sum is re-encoded for the link)."""
    heard_l16, said_l16 = _heard_by_a1(cascade.L16)
    heard_pcmu, said_pcmu = _heard_by_a1(cascade.PCMU)
    snr_l16, snr_pcmu = _snr(said_l16, heard_l16), _snr(said_pcmu, heard_pcmu)
    print(f"three voices across one link: L16 {snr_l16:.1f} dB, PCMU {snr_pcmu:.1f} dB")
    # One µ-law quantisation of speech is ~35-38 dB; a second on the sum costs ~1-3 dB.
    assert snr_l16 > 33
    assert snr_l16 - snr_pcmu > 0.5


def test_open_orders_are_validated_whole_and_travel_as_json() -> None:
    with pytest.raises(CascadeError) as caught:
        validate(OpenCascade("m\x00", "node b", "production", "example.org", 70000, "opus"))
    message = str(caught.value)
    for field in ("meeting_id", "peer_node", "codec", "peer_host", "peer_port"):
        assert field in message, message
    with pytest.raises(CascadeError, match="peer_port"):
        validate(OpenCascade("m1", "B", "production", "127.0.0.1", 0))
    with pytest.raises(CascadeError, match="peer_host"):
        validate(OpenCascade("m1", "B", "production", "", 4000))
    validate(OpenCascade("m1", "node-b.1", "production"))  # reserve only
    validate(OpenCascade("m1", "B", "production", "::1", 4000, cascade.PCMU))
    # The shape of telephony/orders.py: orjson out, the dataclass's fields back in.
    opened = OpenCascade("m1", "B", "production", "10.0.0.2", 4000)
    closed = CloseCascade("m1", "B", "production")
    assert OpenCascade(**orjson.loads(orjson.dumps(opened))) == opened
    assert CloseCascade(**orjson.loads(orjson.dumps(closed))) == closed


def test_the_mixer_adds_peer_audio_to_its_room_only_and_not_to_the_sums() -> None:
    frames = np.array([[100], [200], [1000], [2000], [3000]], dtype=np.int16)
    starts, room_of = np.array([0, 2]), np.array([0, 0, 1, 1, 1])
    speaking = np.array([True, True, True, False, True])  # 2000 is muted
    peer = np.array([50_000], np.int32)  # loud enough to clip
    heard, sums = mix_rooms_and_sums(frames, speaking, starts, room_of, {1: peer})
    assert heard[:, 0].tolist() == [200, 100, 32767, 32767, 32767]
    assert sums[:, 0].tolist() == [300, 4000]  # what the links send: local voices only
    heard, _ = mix_rooms_and_sums(
        frames, speaking, starts, room_of, {1: np.array([-500], np.int32)}
    )
    assert heard[:, 0].tolist() == [200, 100, 2500, 3500, 500]
    heard, _ = mix_rooms_and_sums(frames, speaking, starts, room_of, {0: np.array([7], np.int32)})
    assert heard[:, 0].tolist() == [207, 107, 3000, 4000, 1000]
