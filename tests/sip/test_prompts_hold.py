"""Prompts and hold with real phones (issue 14): baresip peers each playing their own tone.
A prompt WAV (16 kHz stereo: resampled by the server) is fetched from a local HTTP server; a
prompt to everyone is heard by all, one with `phone` by that phone only; a held phone hears the
music on hold and is not heard by the others (and queryMeeting shows it held); a looping prompt
is heard until stopMeetingPrompt, then not."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.sip.peers import (
    PEERS,
    RATE,
    Baresip,
    answered,
    band_levels,
    numbers_of,
    read_wav,
    recordings_toml,
    serving_phones,
    tone_phones,
)

pytestmark = [pytest.mark.timeout(150), pytest.mark.baresip]

#: The prompt WAVs come from a site on loopback, which the server refuses by default (SSRF).
PRIVATE_URLS = "[prompts]\nallow_private_urls = true\n\n"

#: Tones clear of the hold music's notes and their harmonics (sounds.hold_music).
TONES = {"alice": 1150.0, "bob": 1250.0, "carol": 1450.0}
TO_ALL, TO_BOB = 1700.0, 1900.0
LOOP = 2100.0  # a looping prompt, stopped by stopMeetingPrompt
MUSIC = 261.63  # the hold music's C


def _prompt_wav(path: Path, frequency: float, rate: int = 16000, seconds: float = 2.0) -> None:
    t = np.arange(int(rate * seconds)) / rate
    samples = (0.3 * np.sin(2 * np.pi * frequency * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.repeat(samples, 2).tobytes())


@contextlib.contextmanager
def _serve(directory: Path) -> Iterator[str]:
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(directory))  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _levels(peer: Baresip, start: float, end: float) -> dict[float, float]:
    samples = read_wav(peer.recording())[int(start * RATE) : int(end * RATE)]
    return band_levels(samples, [*TONES.values(), TO_ALL, TO_BOB, LOOP, MUSIC, 1600.0])


async def test_prompts_and_hold_with_real_phones(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _prompt_wav(site / "all.wav", TO_ALL)
    _prompt_wav(site / "bob.wav", TO_BOB)
    _prompt_wav(site / "loop.wav", LOOP, seconds=0.6)
    peers = tone_phones(tmp_path, TONES, seconds=40)
    phones = numbers_of(PEERS)
    marks: dict[str, float] = {}
    with _serve(site) as base:
        async with serving_phones(
            tmp_path, peers, phones, recordings_toml(tmp_path) + PRIVATE_URLS
        ) as api:

            async def post(action: str, **params: Any) -> str:
                reply = await asyncio.to_thread(
                    api.post, {"action": action, "confid": meid, **params}, env="production"
                )
                return str(reply.code)

            meid = await asyncio.to_thread(
                api.create_meeting,
                "production",
                beep="0",
                parties=[{"phone": p} for p in phones.values()],
            )
            await asyncio.to_thread(
                api.wait_for, meid, answered(list(phones.values())), "production", 20
            )
            marks["answered"] = time.monotonic()
            await asyncio.sleep(1.0)
            assert await post("playMeetingPrompt", url=f"{base}/all.wav") == "0"
            marks["to_all"] = time.monotonic()
            await asyncio.sleep(2.5)
            reply = await post("playMeetingPrompt", url=f"{base}/bob.wav", phone=phones["bob"])
            assert reply == "0"
            marks["to_bob"] = time.monotonic()
            await asyncio.sleep(2.5)
            assert await post("holdMeetingMember", phone=phones["carol"]) == "0"
            marks["held"] = time.monotonic()
            meeting = await asyncio.to_thread(api.query, meid, "production")
            held = {m["phone"]: m["held"] for m in meeting["members"]}
            assert held == {phones["alice"]: False, phones["bob"]: False, phones["carol"]: True}
            await asyncio.sleep(2.5)
            assert await post("unholdMeetingMember", phone=phones["carol"]) == "0"
            marks["unheld"] = time.monotonic()
            assert await post("playMeetingPrompt", url=f"{base}/loop.wav", loop="1") == "0"
            marks["loop"] = time.monotonic()
            await asyncio.sleep(2.5)
            assert await post("stopMeetingPrompt") == "0"
            marks["stopped"] = time.monotonic()
            await asyncio.sleep(2.0)
            marks["silent"] = time.monotonic()
            meeting = await asyncio.to_thread(api.query, meid, "production")
            assert not any(m["held"] for m in meeting["members"])
            assert await post("holdMeetingMember", phone="13900000009") == "-304"
            assert await post("playMeetingPrompt", url=f"{base}/missing.wav") == "-101"
            assert await post("playMeetingPrompt", text="x", url=f"{base}/all.wav") == "-101"
            assert await post("playMeetingPrompt", text="会议即将结束") == "0"
            await asyncio.sleep(1.0)
            assert await post("destroyMeeting") == "0"
            for peer in peers:
                await peer.wait_event("CALL_CLOSED", timeout=15)

    def span(start: str, end: str) -> tuple[float, float]:
        base = marks["answered"]
        return marks[start] - base + 0.4, marks[end] - base - 0.2

    # The prompt to everyone: all three hear it.
    for peer in peers:
        levels = _levels(peer, *span("to_all", "to_bob"))
        assert levels[TO_ALL] - levels[1600.0] >= 25, (peer.name, levels)
    # The prompt to bob: bob hears it, alice and carol do not.
    heard = {peer.name: _levels(peer, *span("to_bob", "held")) for peer in peers}
    assert heard["bob"][TO_BOB] - heard["bob"][1600.0] >= 25, heard["bob"]
    for name in ("alice", "carol"):
        assert heard["bob"][TO_BOB] - heard[name][TO_BOB] >= 30, (name, heard[name])
    # Carol on hold: she hears the music and not the others; they do not hear her.
    held = {peer.name: _levels(peer, *span("held", "unheld")) for peer in peers}
    assert held["carol"][MUSIC] - held["carol"][TONES["alice"]] >= 20, held["carol"]
    assert held["carol"][MUSIC] - held["carol"][TONES["bob"]] >= 20, held["carol"]
    for name, other in (("alice", "bob"), ("bob", "alice")):
        assert held[name][TONES[other]] - held[name][TONES["carol"]] >= 25, (name, held[name])
        assert held[name][TONES[other]] - held[name][MUSIC] >= 25, (name, held[name])
    # The looping prompt: heard by all (it plays over and over) until stopMeetingPrompt.
    for peer in peers:
        looping = _levels(peer, *span("loop", "stopped"))
        after = _levels(peer, *span("stopped", "silent"))
        assert looping[LOOP] - looping[1600.0] >= 25, (peer.name, looping)
        assert looping[LOOP] - after[LOOP] >= 25, (peer.name, looping, after)
