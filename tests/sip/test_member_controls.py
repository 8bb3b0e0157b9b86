"""Join muted, mute all and endoncreatorleave with real phones (issue 14): baresip peers each
playing their own tone; what each heard is its own recording."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.servers import member
from tests.sip.peers import (
    PEERS,
    RATE,
    Baresip,
    answered,
    band_levels,
    ended_with_recording,
    numbers_of,
    read_wav,
    recordings_toml,
    serving_phones,
    tone_phones,
    tones_of,
)

pytestmark = [pytest.mark.timeout(150), pytest.mark.baresip]

TONES = tones_of(PEERS)


def _heard(peer: Baresip, start: float, end: float) -> dict[str, float]:
    samples = read_wav(peer.recording())[int(start * RATE) : int(end * RATE)]
    levels = band_levels(samples, list(TONES.values()))
    return {name: levels[tone] for name, tone in TONES.items()}


async def test_join_muted_mute_all_and_the_creator_ending_the_meeting(tmp_path: Path) -> None:
    peers = tone_phones(tmp_path, TONES, seconds=30)
    alice, bob, carol = peers
    phones = numbers_of(PEERS)
    marks: dict[str, float] = {}
    async with serving_phones(tmp_path, peers, phones, recordings_toml(tmp_path)) as api:

        async def post(action: str, **params: Any) -> None:
            reply = await asyncio.to_thread(
                api.post, {"action": action, "confid": meid, **params}, env="production"
            )
            assert reply.code == "0", reply.body

        meid = await asyncio.to_thread(
            api.create_meeting,
            "production",
            creator=phones["alice"],
            endoncreatorleave="1",
            beep="0",
            record="1",
            parties=[{"phone": phones["bob"], "muted": "1"}, {"phone": phones["carol"]}],
        )
        meeting = await asyncio.to_thread(
            api.wait_for, meid, answered(list(phones.values())), "production", 20
        )
        assert member(meeting, phones["bob"])["muted"] is True
        marks["answered"] = time.monotonic()
        await asyncio.sleep(2.5)  # bob joined muted
        await post("unmuteMeetingMember", phone=phones["bob"])
        marks["unmuted"] = time.monotonic()
        await asyncio.sleep(2.5)  # everyone heard
        await post("muteAllMeetingMembers")
        marks["muted_all"] = time.monotonic()
        await asyncio.sleep(2.5)  # only alice, the creator, is heard
        meeting = await asyncio.to_thread(api.query, meid, "production")
        muted = {m["phone"]: m["muted"] for m in meeting["members"]}
        assert muted == {phones["alice"]: False, phones["bob"]: True, phones["carol"]: True}
        await alice.command("hangup")  # the creator leaves: the meeting ends
        for peer in peers:
            await peer.wait_event("CALL_CLOSED", timeout=15)
        meeting = await asyncio.to_thread(
            api.wait_for, meid, ended_with_recording, "production", 15
        )

    # The meeting ended by emptying (no EndMeeting order): its recording was finished anyway.
    assert meeting["recordings"][0]["seconds"] >= 7
    assert member(meeting, phones["alice"])["stateDesc"] == "应答|正常"
    assert member(meeting, phones["bob"])["stateDesc"] == "应答|会议结束"
    assert member(meeting, phones["carol"])["stateDesc"] == "应答|会议结束"

    def window(start: str, end: str) -> tuple[float, float]:
        base = marks["answered"]
        return marks[start] - base + 0.7, marks[end] - base - 0.3

    unmuted_at = marks["unmuted"] - marks["answered"]
    # Joined muted: alice and carol hear each other, not bob.
    for peer, other in ((alice, "carol"), (carol, "alice")):
        heard = _heard(peer, 0.5, unmuted_at - 0.3)
        assert heard[other] - heard["bob"] >= 25, (peer.name, heard)
    # Unmuted: everyone hears bob.
    for peer in (alice, carol):
        heard = _heard(peer, *window("unmuted", "muted_all"))
        assert heard["bob"] - heard[peer.name] >= 20, (peer.name, heard)
    # Mute all: bob and carol hear alice (the creator) only; alice hears nobody.
    start = marks["muted_all"] - marks["answered"] + 0.7
    for peer, silent in ((bob, "carol"), (carol, "bob")):
        heard = _heard(peer, start, start + 1.5)
        assert heard["alice"] - heard[silent] >= 25, (peer.name, heard)
    heard = _heard(alice, start, start + 1.5)
    assert max(heard.values()) < _heard(alice, *window("unmuted", "muted_all"))["bob"] - 25, heard
