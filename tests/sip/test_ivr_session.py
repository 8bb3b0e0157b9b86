"""The IVR's media on the media node's shared 20 ms clock (issue 15): a caller in the IVR gets one
prompt frame per tick of the mixing clock and its socket (RFC 4733 keys) is read by that tick,
not by a timer and a callback per packet of its own. Real RTP sockets on loopback; the IVR
machine, the digit receiver and the conference are the product's."""

from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest

from telemeeting.telephony.dialin import Admission
from telemeeting.telephony.ivr.machine import Ivr, Prompt, Verdict
from telemeeting.telephony.ivr.session import IvrSession, PromptPlayer
from telemeeting.telephony.media import g711, rtp
from telemeeting.telephony.media.conference import Conference
from telemeeting.telephony.media.dtmf import EVENT_CODES, event_payload
from telemeeting.telephony.media.ports import PortPool
from telemeeting.telephony.media.sdp import DTMF_PT
from telemeeting.telephony.media.stream import RtpStream

HOST = "127.0.0.1"
pytestmark = pytest.mark.timeout(30)


class Phone:
    def __init__(self) -> None:
        self.on_key = lambda _key: None


class Recorder:
    """A stream double for the player alone: what it was asked to send and to read."""

    payload_type = g711.PCMA
    on_event = None

    def __init__(self) -> None:
        self.sent: list[bytes | None] = []
        self.drained: list[int] = []

    def write_payload(self, payload: bytes | None) -> None:
        self.sent.append(payload)

    def drain(self, limit: int = 8) -> None:
        self.drained.append(limit)

    def start_polling(self) -> None:
        pass


def tone(samples: int) -> np.ndarray:
    return (np.sin(np.arange(samples) * 2 * np.pi * 440 / 8000) * 8000).astype(np.int16)


def test_player_sends_the_prompt_frame_by_frame_then_silence() -> None:
    stream = Recorder()
    player = PromptPlayer(stream)
    prompt = tone(400)
    player.play(prompt)
    assert not player.idle.is_set()
    for _ in range(4):
        player.tick(1)
    whole = g711.encode(g711.PCMA, prompt)
    assert stream.sent[:2] == [whole[:160], whole[160:320]]
    assert stream.sent[2] == whole[320:] + g711.silence(g711.PCMA, 80)
    assert stream.sent[3] is None  # silence between prompts
    assert player.idle.is_set()
    assert stream.drained == [1, 1, 1, 1]  # the caller's socket is read every tick
    player.play(prompt)
    player.tick(1)
    stream.payload_type = g711.PCMU  # a re-INVITE changed the codec mid-prompt
    player.tick(1)
    assert stream.sent[-1] == g711.encode(g711.PCMU, prompt[160:320])


async def bound_stream(peer: socket.socket) -> RtpStream:
    _, stream, _ = await PortPool(41000, 41999).bind(HOST, RtpStream)
    stream.remote = peer.getsockname()
    stream.dtmf_payload_type = DTMF_PT
    return stream


def key_packets(keys: str, port: int, sender: socket.socket) -> None:
    """Each key as an RFC 4733 event: a start packet and three end packets, one timestamp."""
    for number, key in enumerate(keys):
        code, timestamp = EVENT_CODES[key], 8000 * (number + 1)
        packets = [event_payload(code, 160)] + [event_payload(code, 800, end=True)] * 3
        for index, payload in enumerate(packets):
            packet = rtp.pack(DTMF_PT, 4 * number + index, timestamp, 7, payload, index == 0)
            sender.sendto(packet, (HOST, port))


async def test_a_caller_in_the_ivr_rides_the_conference_clock() -> None:
    """Frames go out only when the clock ticks, and keys are read by the tick: nothing reaches
    the IVR between ticks. Admitted, the caller is detached from the clock."""
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind((HOST, 0))
    peer.settimeout(2)
    conference = Conference()
    stream = await bound_stream(peer)
    admission = Admission(Verdict.ADMITTED, "m1", "in1")
    asked: list[tuple[str, str]] = []

    async def admit(meid: str, pin: str) -> Admission:
        asked.append((meid, pin))
        return admission

    prompts = {Prompt.ENTER_PIN: tone(8000)}
    session = IvrSession(Phone(), stream, Ivr("123"), prompts, admit, clock=conference)
    task = asyncio.create_task(session.run())
    try:
        await asyncio.sleep(0.05)
        assert list(conference.attached) == [session.player]
        key_packets("4321#", stream.transport.get_extra_info("sockname")[1], peer)
        await asyncio.sleep(0.1)
        assert stream.rx_events == 0 and session.heard == []  # no callback read them
        conference.tick_attached()  # tick 0: a full drain (8 packets), and one frame out
        frame = peer.recv(2048)
        assert frame[1] & 0x7F == g711.PCMU
        assert frame[rtp.HEADER_SIZE :] == g711.encode(g711.PCMU, tone(8000)[:160])
        for _ in range(3):
            conference.tick_attached()
        assert await asyncio.wait_for(task, 2) is admission
        assert asked == [("123", "4321")]
        assert session.heard == list("4321#")
        assert conference.attached == {}
    finally:
        task.cancel()
        stream.close()
        peer.close()


async def test_a_released_caller_is_paced_by_the_running_clock_then_detached() -> None:
    """Silence twice: the prompt, again, then goodbye, all played on the running clock at one
    frame per 20 ms; then the call is released and leaves the clock."""
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind((HOST, 0))
    peer.setblocking(False)
    conference = Conference()
    clock = asyncio.create_task(conference.run())
    stream = await bound_stream(peer)

    async def admit(meid: str, pin: str) -> Admission:
        raise AssertionError("nothing was keyed")

    prompts = {prompt: tone(1600) for prompt in Prompt}  # 0.2 s each
    session = IvrSession(Phone(), stream, Ivr(), prompts, admit, 0.1, clock=conference)
    try:
        started = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(session.run(), 10) is None
        elapsed = asyncio.get_running_loop().time() - started
        assert conference.attached == {}
        frames = 0
        while True:
            try:
                peer.recv(2048)
            except BlockingIOError:
                break
            frames += 1
        # 3 prompts of 10 frames and two silences of 0.1 s at least: about 40 frames, one per
        # tick of the clock (a late clock catches up, but never runs ahead of real time).
        assert elapsed >= 0.6
        assert 20 <= frames <= elapsed / 0.02 + 2
    finally:
        clock.cancel()
        stream.close()
        peer.close()


async def test_a_failing_attached_stream_is_detached_and_the_clock_goes_on() -> None:
    conference = Conference()
    ticks: list[int] = []

    class Broken:
        def tick(self, drain_limit: int) -> None:
            raise RuntimeError("broken")

    class Counting:
        def tick(self, drain_limit: int) -> None:
            ticks.append(drain_limit)

    broken, counting = Broken(), Counting()
    conference.attach(broken)
    conference.attach(counting)
    clock = asyncio.create_task(conference.run())
    try:
        async with asyncio.timeout(10):  # the clock keeps going (a busy machine: slower)
            while len(ticks) < 12:
                await asyncio.sleep(0.02)
        assert broken not in conference.attached
        assert 8 in ticks and 1 in ticks  # a full drain every tenth tick, one packet otherwise
        conference.detach(counting)
        count = len(ticks)
        await asyncio.sleep(0.1)
        assert len(ticks) == count
    finally:
        clock.cancel()
