"""Speaker events with real phones (issue 14): only alice's baresip plays a tone, bob and carol
send silence; the events name alice, and nobody once she is muted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.servers import member
from tests.sip.peers import (
    PEERS,
    Baresip,
    answered,
    numbers_of,
    recordings_toml,
    serving_phones,
    write_tone,
)

pytestmark = [pytest.mark.timeout(150), pytest.mark.baresip]


async def test_speaker_events_name_the_phone_that_talks(tmp_path: Path) -> None:
    peers = []
    for name in PEERS:
        wav = tmp_path / f"{name}.wav"
        write_tone(wav, 440.0, seconds=30, level=0.25 if name == "alice" else 0.0)
        peers.append(Baresip(tmp_path, name, wav))
    phones = numbers_of(PEERS)
    async with serving_phones(tmp_path, peers, phones, recordings_toml(tmp_path)) as api:
        meid = await asyncio.to_thread(
            api.create_meeting,
            "production",
            speakerevents="1",
            beep="0",
            parties=[{"phone": p} for p in phones.values()],
        )
        await asyncio.to_thread(
            api.wait_for, meid, answered(list(phones.values())), "production", 20
        )
        meeting = await asyncio.to_thread(
            api.wait_for,
            meid,
            lambda m: member(m, phones["alice"])["speaking"],
            "production",
            10,
        )
        assert not member(meeting, phones["bob"])["speaking"]
        muted = await asyncio.to_thread(
            api.post,
            {"action": "muteMeetingMember", "confid": meid, "phone": phones["alice"]},
            env="production",
        )
        assert muted.code == "0"
        await asyncio.to_thread(
            api.wait_for,
            meid,
            lambda m: not member(m, phones["alice"])["speaking"],
            "production",
            10,
        )
        reply = await asyncio.to_thread(
            api.post,
            {"action": "queryMeetingEvents", "confid": meid},
            env="production",
            func_url="MeetingQuery.wx",
        )

    found: list[dict[str, Any]] = [
        e["body"]
        for e in reply.body["events"]
        if e["type"] == "MeetingState" and e["body"]["state"] == "speakers"
    ]
    assert [event["speakers"] for event in found] == [[phones["alice"]], []], found
