"""Unit tests of the media pieces: G.711, RTP, jitter buffer, N-1 mixer, DTMF, SDP."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest

from telemeeting.telephony.media import dtmf, g711, sdp
from telemeeting.telephony.media.conference import Conference
from telemeeting.telephony.media.jitter import JitterBuffer, seq_delta
from telemeeting.telephony.media.mixer import mix_minus, mix_rooms
from telemeeting.telephony.media.rtp import RtpPacket, pack
from telemeeting.telephony.media.stream import RtpStream

# Golden tables (SHA-256), checked bit-exact against audioop on Python 3.11 when written.
GOLDEN = {
    "ULAW_ENCODE": "617fa4850d68d3906597e949f7625fb2fc46db479e29707f33159b3d131721cb",
    "ALAW_ENCODE": "f77c76aa923ee25617453f87514828a12896227f82ff383bf3bb53d6ac7c2a0f",
    "ULAW_DECODE": "3dab54339e520bb2c924826e3b72a917a2b612e9fd12fc867500f1d983a75827",
    "ALAW_DECODE": "e04788d110e58ff8c70c93b8480190d973e3b67876b6119abbaec766cc75c174",
}


@pytest.mark.parametrize("name", list(GOLDEN))
def test_g711_tables_match_golden(name):
    assert hashlib.sha256(getattr(g711, name).tobytes()).hexdigest() == GOLDEN[name]


def test_g711_bit_exact_with_audioop_when_available():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    pcm = np.arange(-32768, 32768, dtype=np.int16)
    codes = bytes(range(256))
    assert g711.encode(g711.PCMU, pcm) == audioop.lin2ulaw(pcm.tobytes(), 2)
    assert g711.encode(g711.PCMA, pcm) == audioop.lin2alaw(pcm.tobytes(), 2)
    assert g711.decode(g711.PCMU, codes).tobytes() == audioop.ulaw2lin(codes, 2)
    assert g711.decode(g711.PCMA, codes).tobytes() == audioop.alaw2lin(codes, 2)


@pytest.mark.parametrize("pt", [g711.PCMU, g711.PCMA])
def test_g711_round_trip(pt):
    codes = bytes(range(256))
    assert g711.encode(pt, g711.decode(pt, codes)) == codes or pt == g711.PCMU
    tone = (np.sin(np.arange(800) / 5) * 12000).astype(np.int16)
    back = g711.decode(pt, g711.encode(pt, tone)).astype(np.int32)
    assert np.max(np.abs(back - tone)) <= 12000 / 16 + 8  # G.711 steps are under 1/16
    assert g711.decode(pt, g711.silence(pt)).max() <= 8


def test_rtp_round_trip_with_csrc_extension_padding():
    packet = RtpPacket(0, 65535, 2**32 - 1, 0xDEADBEEF, b"\x01\x02", marker=True)
    assert RtpPacket.parse(packet.serialize()) == packet
    assert pack(0, 65535, 2**32 - 1, 0xDEADBEEF, b"\x01\x02", True) == packet.serialize()
    data = bytearray(packet.serialize())
    data[0] |= 0x01 | 0x10 | 0x20  # one CSRC, an extension header, padding
    raw = bytes(data[:12]) + b"CSRC" + b"\xbe\xde\x00\x01" + b"EXT!" + b"\x01\x02" + b"\x00\x02"
    parsed = RtpPacket.parse(raw)
    assert parsed is not None and parsed.payload == b"\x01\x02"
    assert RtpPacket.parse(b"\x00" * 12) is None  # version 0
    assert RtpPacket.parse(b"\x80\xc8" + b"\x00" * 10) is None  # RTCP SR


def test_seq_delta_wraps():
    assert seq_delta(0, 65535) == 1
    assert seq_delta(65535, 0) == -1
    assert seq_delta(10, 5) == 5


def test_jitter_buffer_reorders_across_wrap_and_fills_gaps():
    buffer: JitterBuffer[int] = JitterBuffer(capacity=16, prefetch=2)
    for seq in [65533, 65535, 65534, 1, 0]:  # out of order, across the wrap; 2 is lost
        buffer.put(seq, seq)
    buffer.put(3, 3)
    out = [buffer.pop() for _ in range(7)]
    assert out == [65533, 65534, 65535, 0, 1, None, 3]
    assert buffer.lost == 1
    buffer.put(1, 1)  # far too late
    assert buffer.late == 1


def test_jitter_buffer_prefetches_and_idles_without_advancing():
    buffer: JitterBuffer[int] = JitterBuffer(capacity=8, prefetch=2)
    buffer.put(100, 100)
    assert buffer.pop() is None  # waiting for a second packet
    buffer.put(101, 101)
    assert [buffer.pop(), buffer.pop(), buffer.pop(), buffer.pop()] == [100, 101, None, None]
    buffer.put(102, 102)  # silence suppression ended: not "late"
    buffer.put(103, 103)
    assert [buffer.pop(), buffer.pop()] == [102, 103]


def test_jitter_buffer_drops_oldest_when_overrun_and_resyncs_on_jump():
    buffer: JitterBuffer[int] = JitterBuffer(capacity=4, prefetch=1)
    for seq in range(10):
        buffer.put(seq, seq)
    assert len(buffer) == 4 and buffer.pop() == 6
    buffer.put(40000, 40000)  # a restarted sender
    assert buffer.pop() == 40000


def test_mix_minus_excludes_self_and_muted_and_clips():
    frames = np.array([[1000] * 160, [2000] * 160, [30000] * 160, [4] * 160], dtype=np.int16)
    speaking = np.array([True, True, True, False])  # the last one is muted
    out = mix_minus(frames, speaking)
    assert out[0, 0] == 32000 and out[1, 0] == 31000
    assert out[2, 0] == 3000  # never itself
    assert out[3, 0] == 32767  # hears everyone, clipped
    negative = mix_minus(np.full((3, 160), -30000, dtype=np.int16), np.ones(3, dtype=bool))
    assert negative.min() == -32768


def test_dtmf_plan_shapes_events():
    steps = list(dtmf.plan("1#", delay_ticks=2, tone_ticks=3, gap_ticks=1))
    assert steps[:2] == [None, None]
    first = [s for s in steps[2:8] if s is not None]
    assert first[0].first and not any(s.first for s in first[1:])
    codes = [dtmf.parse_event(s.payload) for s in first]
    assert codes[:3] == [(1, False, 160), (1, False, 320), (1, False, 480)]
    assert codes[3:] == [(1, True, 480)] * 3
    assert steps[8] is None and steps[9].first and dtmf.parse_event(steps[9].payload)[0] == 11
    assert len(steps) == 2 + 6 + 1 + 6
    assert dtmf.valid_digits("12,3p#x") == "123#"


def test_sdp_offer_and_answer_parsing():
    offer = sdp.offer("127.0.0.1", 20000, 42)
    parsed = sdp.parse(offer)
    assert (parsed.host, parsed.port, parsed.formats) == ("127.0.0.1", 20000, [0, 8, 101])
    assert parsed.dtmf_payload_type() == 101 and "a=ptime:20" in offer
    answer = sdp.parse(
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 8 96\r\nc=IN IP4 10.0.0.3\r\na=rtpmap:96 telephone-event/8000\r\n"
        "a=sendonly\r\n"
    )
    assert (answer.host, answer.port, answer.codec()) == ("10.0.0.3", 4000, 8)
    assert answer.dtmf_payload_type() == 96 and answer.direction == "sendonly"
    ours = sdp.parse(sdp.answer("127.0.0.1", 20002, 42, 2, answer))
    assert ours.formats == [8, 96]
    with pytest.raises(sdp.SdpError):
        sdp.parse("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 18\r\n").codec()
    with pytest.raises(sdp.SdpError):
        sdp.parse("v=0\r\nm=video 4000 RTP/AVP 96\r\n")


def test_g711_batch_mixes_laws_per_row():
    samples = (np.arange(320, dtype=np.int16) * 97 - 15000).reshape(2, 160).astype(np.int16)
    alaw = np.array([False, True])
    codes = g711.encode_frames(samples, alaw)
    assert codes[0].tobytes() == g711.encode(g711.PCMU, samples[0])
    assert codes[1].tobytes() == g711.encode(g711.PCMA, samples[1])
    decoded = g711.decode_frames(codes, alaw)
    assert (decoded[1] == g711.decode(g711.PCMA, codes[1].tobytes())).all()
    assert (g711.decode_frames(codes, np.array([False, False]))[0] == decoded[0]).all()


def test_mix_rooms_keeps_rooms_apart():
    frames = np.array([[100], [200], [300], [1000], [2000]], dtype=np.int16)
    out = mix_rooms(frames, np.ones(5, bool), np.array([0, 3]), np.array([0, 0, 0, 1, 1]))
    assert out[:, 0].tolist() == [500, 400, 300, 2000, 1000]


class _Wire:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr: object) -> None:
        self.sent.append(data)

    def close(self) -> None: ...


def _member_stream(payload_type: int) -> tuple[RtpStream, _Wire]:
    stream, wire = RtpStream(), _Wire()
    stream.transport = wire  # type: ignore[assignment]
    stream.remote = ("127.0.0.1", 9)
    stream.payload_type = payload_type
    return stream, wire


def test_conference_tick_mixes_n_minus_one_across_codecs_and_rooms():
    conference = Conference()
    level = {"a": 4000, "b": -2000, "c": 1000, "x": 3000}
    codec = {"a": g711.PCMU, "b": g711.PCMA, "c": g711.PCMU, "x": g711.PCMA}
    wires = {}
    for name in level:
        stream, wires[name] = _member_stream(codec[name])
        member = conference.add("solo" if name == "x" else "room", name, stream)
        member.joined = True
        member.muted = name == "c"
        frame = np.full(160, level[name], np.int16)
        for seq in range(3):
            stream.jitter.put(seq, (codec[name], g711.encode(codec[name], frame)))
    conference.tick()
    heard = {}
    for name, wire in wires.items():
        packet = RtpPacket.parse(wire.sent[-1])
        assert packet is not None and packet.payload_type == codec[name]
        heard[name] = int(g711.decode(codec[name], packet.payload)[0])
    assert abs(heard["a"] - (-2000)) < 150  # b only: c is muted
    assert abs(heard["b"] - 4000) < 150
    assert abs(heard["c"] - 2000) < 150  # muted, but hears a + b
    assert abs(heard["x"]) <= 8  # alone in its room
