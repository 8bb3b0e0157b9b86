"""The in-call media pieces on their own: synthetic voices, the recorder, beeps and the mix."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from telemeeting.telephony.driver import LegReport, Progress
from telemeeting.telephony.media import g711
from telemeeting.telephony.media.conference import Conference
from telemeeting.telephony.media.recorder import (
    Recorder,
    encode_mp3,
    finished,
    read_wav_samples,
)
from telemeeting.telephony.media.synthetic import SyntheticStream, voice_samples
from telemeeting.telephony.orders import DialOrder, StartRecording, StopRecording
from telemeeting.telephony.sim.carrier import SimulatedCarrier


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0


def _pitch(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    freqs = np.fft.rfftfreq(len(samples), 1 / 8000)
    band = (freqs > 80) & (freqs < 400)
    return float(freqs[band][np.argmax(spectrum[band])])


def test_synthetic_voices_differ_and_pause() -> None:
    one, two = voice_samples(0), voice_samples(3)
    assert abs(_pitch(one) - _pitch(two)) > 50
    frames = one.reshape(-1, 160)
    levels = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    assert (levels < 1).mean() > 0.15  # pauses
    assert (levels > 500).mean() > 0.3  # talk


def test_recorder_wav_is_playable_before_close_and_after(tmp_path: Path) -> None:
    wav = tmp_path / "r.wav"
    recorder = Recorder(wav)
    for _ in range(120):  # 2.4 s
        recorder.write(np.full(160, 1000, np.int16))
    # Not closed (as after a crash): what was flushed is a valid WAV.
    with wave.open(str(wav)) as reader:
        assert reader.getframerate() == 8000
        assert reader.getnframes() == 100 * 160
    recorder.close()
    with wave.open(str(wav)) as reader:
        assert reader.getnframes() == 120 * 160
    done = encode_mp3(wav)
    assert not wav.exists()
    assert finished(wav) == done
    assert done.seconds == pytest.approx(2.4)
    assert wav.with_suffix(".mp3").stat().st_size == done.bytes


def test_join_beep_is_heard_by_the_others_not_the_joiner(tmp_path: Path) -> None:
    conference = Conference()
    conference.room_media("r").beep = 3
    streams = {key: _Quiet() for key in "abc"}
    for key, stream in streams.items():
        conference.add("r", key, stream)
    conference.join("r", "a")
    conference.join("r", "b")
    for _ in range(20):  # a's and b's own join beeps are over
        conference.tick()
    for stream in streams.values():
        stream.heard.clear()
    conference.join("r", "c")  # c joins: a and b hear a beep, c does not
    for _ in range(10):
        conference.tick()
    assert _rms(streams["a"].samples()) > 1000
    assert _rms(streams["b"].samples()) > 1000
    assert _rms(streams["c"].samples()) == 0


def test_recording_holds_the_mix_of_every_member(tmp_path: Path) -> None:
    conference = Conference()
    wav = tmp_path / "m.wav"
    conference.start_recording("r", "rec1", wav)
    for _ in range(5):  # nobody answered yet: silence is recorded too
        conference.tick()
    for key in ("leg-a", "leg-b"):
        conference.add("r", key, SyntheticStream(key))
        conference.join("r", key)
    for _ in range(250):
        conference.tick()
    recorder = conference.end_room("r")
    assert recorder is not None
    samples = read_wav_samples(wav)
    assert len(samples) == 255 * 160
    assert _rms(samples[: 5 * 160]) == 0
    assert _rms(samples[5 * 160 :]) > 300


class _Quiet:
    """A member that says nothing and keeps what it hears."""

    payload_type = g711.PCMU

    def __init__(self) -> None:
        self.heard: list[bytes] = []

    def enter_room(self) -> None: ...

    def drain(self, limit: int = 8) -> None: ...

    def read_payload(self) -> tuple[int, bytes] | None:
        return None

    def write_payload(self, payload: bytes | None) -> None:
        self.heard.append(payload or g711.silence(g711.PCMU))

    def samples(self) -> np.ndarray:
        return g711.decode(g711.PCMU, b"".join(self.heard))


@pytest.mark.timeout(30)
async def test_simulated_carrier_records_its_parties(tmp_path: Path) -> None:
    reports: list[LegReport] = []

    async def sink(report: LegReport) -> None:
        reports.append(report)

    carrier = SimulatedCarrier(ring_seconds=0.2)
    carrier.attach(sink)
    wav = tmp_path / "sim.wav"
    try:
        await carrier.media(StartRecording("m1", "rec1", str(wav), "sandbox"))
        for index in range(3):
            await carrier.dial(DialOrder("m1", f"leg{index}", f"1380000000{index}", "", "", "s"))
        await asyncio.sleep(3.0)
        answered = [r for r in reports if r.progress is Progress.ANSWERED]
        assert len(answered) == 3
        await carrier.media(StopRecording("m1", "rec1", "sandbox"))
        for _ in range(100):
            if finished(wav):
                break
            await asyncio.sleep(0.05)
    finally:
        await carrier.close()
    done = finished(wav)
    assert done is not None and 2.5 < done.seconds < 3.6
    mpg123 = shutil.which("mpg123")
    if mpg123 is None:
        pytest.skip("mpg123 (Debian) decodes the MP3 in this test")
    out = tmp_path / "decoded.wav"
    subprocess.run([mpg123, "-q", "-w", str(out), str(wav.with_suffix(".mp3"))], check=True)
    with wave.open(str(out)) as reader:
        rate = reader.getframerate()
        decoded = np.frombuffer(reader.readframes(reader.getnframes()), np.int16)
    assert rate == 8000
    assert abs(len(decoded) / rate - done.seconds) < 0.2
    assert _rms(decoded) > 300  # the parties' voices, not silence


def _wav_bytes(samples: np.ndarray, rate: int, channels: int = 1, width: int = 2) -> bytes:
    import io

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        if width == 2:
            data = (samples * 32767).astype("<i2")
        else:
            data = ((samples * 127) + 128).astype(np.uint8)
        out.writeframes(np.repeat(data, channels).tobytes())
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("rate", "channels", "width"), [(16000, 2, 2), (44100, 1, 2), (8000, 1, 1)]
)
def test_any_pcm_wav_becomes_8k_mono(rate: int, channels: int, width: int) -> None:
    from telemeeting.telephony.media.audio import wav_to_8k

    t = np.arange(rate) / rate
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 6000 * t)
    samples = wav_to_8k(_wav_bytes(tone if rate > 12000 else 0.5 * np.sin(2 * np.pi * 1000 * t),
                                   rate, channels, width))  # fmt: skip
    assert abs(len(samples) - 8000) <= 1
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    freqs = np.fft.rfftfreq(len(samples), 1 / 8000)
    assert abs(freqs[np.argmax(spectrum)] - 1000) < 5
    # 6 kHz cannot exist at 8 kHz: it must not fold back to 2 kHz.
    fold = spectrum[(freqs > 1990) & (freqs < 2010)].max()
    assert fold < spectrum.max() / 100


def test_a_stream_with_bogus_sizes_is_read_to_its_end() -> None:
    from telemeeting.telephony.media.audio import AudioError, read_wav

    data = bytearray(_wav_bytes(np.zeros(800), 8000))
    data[4:8] = data[40:44] = (0x7FFFF000).to_bytes(4, "little")  # as espeak-ng --stdout
    samples, rate = read_wav(bytes(data))
    assert rate == 8000 and len(samples) == 800
    with pytest.raises(AudioError):
        read_wav(b"RIFF\x00\x00\x00\x00WAVEjunk")


def test_chinese_text_is_spoken_by_the_mandarin_voice(tmp_path: Path) -> None:
    from telemeeting.service.prompts import speak, voice_for

    assert voice_for("会议开始") == "cmn" and voice_for("meeting starts") == "en"
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng (Debian) speaks prompts")
    path = asyncio.run(speak("你好，会议开始了", tmp_path))
    samples = np.fromfile(path, dtype="<i2")
    assert 0.5 < len(samples) / 8000 < 10
    assert _rms(samples) > 500


def test_a_held_member_hears_music_and_is_not_heard() -> None:
    conference = Conference()
    talker, held = SyntheticStream("leg-talker"), _Quiet()
    listener = _Quiet()
    conference.add("r", "talker", talker)
    conference.add("r", "held", held)
    conference.add("r", "listener", listener)
    for key in ("talker", "held", "listener"):
        conference.join("r", key)
    conference.hold("r", "held", True)
    for _ in range(100):
        conference.tick()
    music = held.samples()
    assert _rms(music) > 300
    # What the held member hears is the music alone, not the talker's voice.
    from telemeeting.telephony.media.sounds import hold_music

    expected = hold_music()[: len(music)]
    assert np.abs(music.astype(np.int32) - expected).max() < 2000
    conference.hold("r", "held", False)
    assert conference.get("r", "held").hold is None  # type: ignore[union-attr]


def test_a_prompt_for_one_member_and_a_loop_replaced_by_the_next_prompt(tmp_path: Path) -> None:
    from telemeeting.telephony.media.sounds import Player, Sound, tone

    conference = Conference()
    streams = {key: _Quiet() for key in "ab"}
    for key, stream in streams.items():
        conference.add("r", key, stream)
        conference.join("r", key)
    wav = tmp_path / "p.wav"
    conference.start_recording("r", "rec", wav)
    conference.play("r", Sound(Player(tone([1000.0], 0.2)), only="a"))
    for _ in range(10):
        conference.tick()
    assert _rms(streams["a"].samples()) > 1000 and _rms(streams["b"].samples()) == 0
    conference.play("r", Sound(Player(tone([700.0], 0.1), loop=True)))
    for _ in range(30):  # 0.6 s: the 0.1 s prompt played six times
        conference.tick()
    assert _rms(streams["b"].samples()[-1600:]) > 1000
    conference.play("r", Sound(Player(tone([500.0], 0.1))))  # replaces the loop
    for _ in range(20):
        conference.tick()
    assert _rms(streams["b"].samples()[-800:]) == 0  # over, and the loop did not come back
    conference.end_room("r")
    recorded = read_wav_samples(wav)
    assert _rms(recorded[: 10 * 160]) == 0  # a's own prompt is not in the recording
    assert _rms(recorded[10 * 160 : 40 * 160]) > 1000  # the prompt to everyone is


def test_the_leave_beep_is_heard_by_those_who_stay() -> None:
    conference = Conference()
    conference.room_media("r").beep = 2
    streams = {key: _Quiet() for key in "ab"}
    for key, stream in streams.items():
        conference.add("r", key, stream)
        conference.join("r", key)
    for _ in range(5):
        conference.tick()
    assert _rms(streams["a"].samples()) == 0  # beep 2: no join beeps
    conference.remove("r", "b")
    for _ in range(10):
        conference.tick()
    assert _rms(streams["a"].samples()) > 1000


def test_every_order_kind_fits_the_orders_table() -> None:
    from telemeeting.telephony import orders

    assert all(len(kind) <= 16 for kind in orders._KINDS)  # orders.kind is VARCHAR(16)


def test_stop_prompt_silences_one_members_prompts_or_all_but_beeps(tmp_path: Path) -> None:
    from telemeeting.telephony.media.control import MediaControl
    from telemeeting.telephony.media.sounds import Player, Sound, join_beep, tone
    from telemeeting.telephony.orders import StopPrompt

    conference = Conference()
    control = MediaControl(conference)
    streams = {key: _Quiet() for key in "ab"}
    for key, stream in streams.items():
        conference.add("r", key, stream)
        conference.join("r", key)
    to_a = Sound(Player(tone([900.0], 0.1), loop=True), only="a")
    to_b = Sound(Player(tone([700.0], 0.1), loop=True), only="b")
    beep = Sound(Player(join_beep()), exclude="b")
    conference.play("r", to_a)
    conference.play("r", to_b)
    conference.room_media("r").sounds.append(beep)
    control.apply(StopPrompt("r", "sandbox", leg_id="a"))
    assert conference.room_media("r").sounds == [to_b, beep]
    for _ in range(10):
        conference.tick()
    assert _rms(streams["b"].samples()) > 1000  # b's loop plays on
    control.apply(StopPrompt("r", "sandbox"))  # every prompt; the beep is not one
    assert conference.room_media("r").sounds == [beep]
    for _ in range(10):
        conference.tick()
    assert _rms(streams["b"].samples()[-800:]) == 0
    control.apply(StopPrompt("elsewhere", "sandbox"))  # a room without media: nothing to do


# --- the per-packet fast paths (bench/media_tick_cpu.py) must not change what a leg does --------
class _ReferenceJitter:
    """The jitter buffer's `put` as it was before its fast path (7ece0c8), kept as the oracle."""

    def __init__(self, capacity: int = 16, prefetch: int = 2) -> None:
        from telemeeting.telephony.media.jitter import JitterBuffer

        self.buffer: JitterBuffer[int] = JitterBuffer(capacity, prefetch)

    def put(self, sequence: int, item: int) -> None:
        from telemeeting.telephony.media.jitter import seq_delta

        b = self.buffer
        if b._next is None:
            b._next = sequence
        delta = seq_delta(sequence, b._next)
        if delta < 0:
            if b._count == 0 and not b._playing:
                b._next = sequence
                delta = 0
            elif delta < -b.capacity * 4:
                b.reset()
                b._next = sequence
                delta = 0
            else:
                b.late += 1
                return
        if delta >= b.capacity * 4:
            b.reset()
            b._next = sequence
            delta = 0
        while delta >= b.capacity:
            b._drop_next()
            delta -= 1
        index = sequence % b.capacity
        slot = b._slots[index]
        if slot is not None and slot[0] == sequence:
            return
        if slot is None:
            b._count += 1
        b._slots[index] = (sequence, item)


def test_jitter_fast_path_plays_out_exactly_as_before() -> None:
    """Random arrivals (in order, reordered, duplicated, late, lost, jumps, across the 16-bit
    wrap), each put into the buffer and into the reference; every pop must agree, and so must
    the counters of late and lost packets."""
    from telemeeting.telephony.media.jitter import JitterBuffer

    rng = np.random.default_rng(16)
    for trial in range(40):
        buffer: JitterBuffer[int] = JitterBuffer(16, 2)
        reference = _ReferenceJitter(16, 2)
        sequence = int(rng.integers(0, 0x10000)) if trial % 2 else 0xFFF0
        for step in range(600):
            arrivals = [sequence]
            roll = rng.random()
            if roll < 0.05:
                arrivals = []  # lost
            elif roll < 0.10:
                arrivals = [sequence, sequence]  # duplicated
            elif roll < 0.15:
                arrivals = [(sequence - int(rng.integers(1, 30))) & 0xFFFF]  # late or resent
            elif roll < 0.17:
                sequence = (sequence + int(rng.integers(17, 200))) & 0xFFFF  # a jump ahead
                arrivals = [sequence]
            elif roll < 0.19:
                sequence = (sequence - int(rng.integers(65, 500))) & 0xFFFF  # a jump back
                arrivals = [sequence]
            elif roll < 0.25:
                arrivals = [(sequence + 1) & 0xFFFF, sequence]  # reordered
                sequence = (sequence + 1) & 0xFFFF
            for arrival in arrivals:
                buffer.put(arrival, step)
                reference.put(arrival, step)
            sequence = (sequence + 1) & 0xFFFF
            if rng.random() < 0.9:  # now and then a tick reads nothing (a late tick)
                assert buffer.pop() == reference.buffer.pop(), (trial, step)
            assert len(buffer) == len(reference.buffer)
        assert (buffer.late, buffer.lost) == (reference.buffer.late, reference.buffer.lost)


async def test_a_leg_reads_its_socket_in_the_tick_and_wraps_its_timestamp() -> None:
    """`RtpStream.drain` reads with `recv`: a packet from an address other than the one the
    SDP named is still played (as when the loop delivered it), anything not RTP is skipped,
    at most `limit` packets are read, and `last_rx` moves. Frames sent keep consecutive
    sequence numbers and 20 ms timestamps across the 32-bit wrap."""
    import socket

    from telemeeting.telephony.media.ports import PortPool
    from telemeeting.telephony.media.rtp import RtpPacket, pack
    from telemeeting.telephony.media.stream import RtpStream

    phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    phone.bind(("127.0.0.1", 0))
    other.bind(("127.0.0.1", 0))
    phone.settimeout(2)
    _, stream, port = await PortPool(43000, 43999).bind("127.0.0.1", RtpStream)
    try:
        stream.remote = phone.getsockname()
        stream.enter_room()
        stream.last_rx = 0.0
        frame = bytes(range(160))
        other.sendto(b"\x00\x01 not rtp at all", ("127.0.0.1", port))
        for sequence in range(3):
            other.sendto(pack(0, 100 + sequence, 0, 7, frame), ("127.0.0.1", port))
        await asyncio.sleep(0.05)  # loopback delivery (the loop does not read a polled leg)
        stream.drain(2)  # the junk and the first frame
        assert stream.rx_packets == 1 and stream.last_rx > 0
        stream.drain(8)
        assert stream.rx_packets == 3
        assert [stream.read_payload() for _ in range(4)] == [(0, frame)] * 3 + [None]

        stream._timestamp = 0xFFFFFFFF - 100
        sent = []
        for _ in range(3):
            stream.write_payload(frame)
            packet = RtpPacket.parse(phone.recv(2048))
            assert packet is not None and packet.payload == frame
            sent.append(packet)
        assert [p.timestamp for p in sent] == [0xFFFFFFFF - 100, 59, 219]
        assert [(p.sequence - sent[0].sequence) & 0xFFFF for p in sent] == [0, 1, 2]
        assert stream.tx_packets == 3
    finally:
        stream.close()
        phone.close()
        other.close()
