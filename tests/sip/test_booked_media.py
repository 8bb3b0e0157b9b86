"""A booked meeting's in-call media with real phones (issue 14): booked through the HTTP API with
record, speaker events, endoncreatorleave and a party booked muted, started by the clock, dialled
over SIP to baresip peers each playing their own tone. The settings kept with the booking are the
ones the media node applies: the muted party is neither heard nor named, the creator is, and the
creator hanging up ends the meeting."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.servers import member
from tests.sip.peers import (
    PEERS,
    answered,
    band_levels,
    decode_mp3,
    ended_with_recording,
    numbers_of,
    recordings_toml,
    serving_phones,
    tone_phones,
    tones_of,
)

pytestmark = [pytest.mark.timeout(150), pytest.mark.baresip]

USED = {name: PEERS[name] for name in ("alice", "bob")}


async def test_a_booked_meeting_applies_its_media_settings_with_real_phones(
    tmp_path: Path,
) -> None:
    peers = tone_phones(tmp_path, tones_of(USED), seconds=30)
    alice, _bob = peers
    phones = numbers_of(USED)
    async with serving_phones(tmp_path, peers, phones, recordings_toml(tmp_path)) as api:
        start = datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(seconds=2)
        meid = await asyncio.to_thread(
            api.create_meeting,
            "production",
            bookmeeting="1",
            booktime=start.strftime("%Y%m%d%H%M%S"),
            creator=phones["alice"],
            endoncreatorleave="1",
            record="1",
            speakerevents="1",
            beep="0",
            parties=[{"phone": phones["bob"], "muted": "1"}],
        )
        meeting = await asyncio.to_thread(
            api.wait_for, meid, answered(list(phones.values())), "production", 25
        )
        assert meeting["state"] == "active", meeting
        assert member(meeting, phones["bob"])["muted"] is True
        await asyncio.sleep(3.0)
        await alice.command("hangup")  # the creator leaves: the meeting ends
        for peer in peers:
            await peer.wait_event("CALL_CLOSED", timeout=15)
        meeting = await asyncio.to_thread(
            api.wait_for, meid, ended_with_recording, "production", 15
        )
        (recording,) = meeting["recordings"]
        response = await asyncio.to_thread(httpx.get, recording["url"], timeout=10)
        events = await asyncio.to_thread(
            api.post,
            {"action": "queryMeetingEvents", "confid": meid},
            env="production",
            func_url="MeetingQuery.wx",
        )

    assert member(meeting, phones["bob"])["stateDesc"] == "应答|会议结束"
    talkers = [
        e["body"]["speakers"]
        for e in events.body["events"]
        if e["type"] == "MeetingState" and e["body"]["state"] == "speakers"
    ]
    assert [phones["alice"]] in talkers, talkers
    assert all(phones["bob"] not in t for t in talkers), talkers
    mix = decode_mp3(response.content, tmp_path)
    tones = {name: tone for name, (_, tone) in USED.items()}
    levels = band_levels(mix, [*tones.values(), 1000.0])
    assert levels[tones["alice"]] - levels[1000.0] >= 20, levels  # the creator is recorded
    assert levels[tones["alice"]] - levels[tones["bob"]] >= 20, levels  # bob, muted, is not
