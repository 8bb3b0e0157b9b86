"""Recording and beeps with real phones (issue 14): baresip peers each playing their own tone,
invited through the HTTP API, dialled over SIP by the media node process. The meeting's MP3 is
fetched over HTTP with its signed link and decoded by mpg123; what each phone heard is its own
baresip recording."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.sip.peers import (
    PEERS,
    RATE,
    answered,
    band_levels,
    decode_mp3,
    numbers_of,
    read_wav,
    recordings_toml,
    serving_phones,
    tone_phones,
    tones_of,
)

pytestmark = [pytest.mark.timeout(150), pytest.mark.baresip]

BEEP = 1200.0  # the join beep's second note (sounds.join_beep)


def _beep_windows(samples: np.ndarray) -> int:
    """How many 100 ms windows carry the beep's note far above the rest of the recording."""
    step = RATE // 10
    levels = [
        band_levels(samples[i : i + step], [BEEP])[BEEP]
        for i in range(0, len(samples) - step, step)
    ]
    if not levels:
        return 0
    floor = float(np.median(levels))
    return sum(1 for level in levels if level > floor + 20)


async def test_recording_and_join_beeps_with_real_phones(tmp_path: Path) -> None:
    peers = tone_phones(tmp_path, tones_of(PEERS), seconds=30)
    phones = [number for number, _ in PEERS.values()]
    async with serving_phones(tmp_path, peers, numbers_of(PEERS), recordings_toml(tmp_path)) as api:
        started = time.monotonic()
        meid = await asyncio.to_thread(
            api.create_meeting,
            "production",
            record="1",
            beep="1",
            parties=[{"phone": p} for p in phones[:2]],
        )
        await asyncio.to_thread(api.wait_for, meid, answered(phones[:2]), "production", 20)
        await asyncio.sleep(2.0)
        invited = await asyncio.to_thread(api.invite, meid, phones[2], env="production")
        assert invited.code == "0"
        await asyncio.to_thread(api.wait_for, meid, answered(phones), "production", 20)
        await asyncio.sleep(2.5)
        destroyed = await asyncio.to_thread(
            api.post, {"action": "destroyMeeting", "confid": meid}, env="production"
        )
        assert destroyed.code == "0"
        length = time.monotonic() - started
        for peer in peers:
            await peer.wait_event("CALL_CLOSED", timeout=15)
        meeting = await asyncio.to_thread(
            api.wait_for,
            meid,
            lambda m: bool(m.get("recordings")) and m["recordings"][0]["bytes"] > 0,
            "production",
            20,
        )
        (recording,) = meeting["recordings"]
        response = await asyncio.to_thread(httpx.get, recording["url"], timeout=10)
        assert response.status_code == 200
        events = await asyncio.to_thread(
            api.post,
            {"action": "queryMeetingEvents", "confid": meid},
            env="production",
            func_url="MeetingQuery.wx",
        )

    mix = decode_mp3(response.content, tmp_path)
    assert abs(len(mix) / RATE - length) <= 1.0, (len(mix) / RATE, length)
    tones = [tone for _, tone in PEERS.values()]
    levels = band_levels(mix, [*tones, 300.0, 1000.0])
    for tone in tones:  # every answered phone is in the recording
        assert levels[tone] - max(levels[300.0], levels[1000.0]) >= 20, levels
    # Carol's tone only from her answer on: absent from the first second.
    early = band_levels(mix[: RATE // 2 * 3], tones)
    assert early[880.0] < early[440.0] - 20, early

    cdrs = [e["body"]["cdr"][0] for e in events.body["events"] if e["type"] == "Call"]
    assert len(cdrs) == 3
    assert all(c["tapesurl"].split("?")[0] == recording["url"].split("?")[0] for c in cdrs)

    # Carol's join beep: alice and bob heard it, carol did not hear her own.
    heard = {peer.name: _beep_windows(read_wav(peer.recording())) for peer in peers}
    assert heard["alice"] >= 1 and heard["bob"] >= 1, heard
    assert heard["carol"] == 0, heard
