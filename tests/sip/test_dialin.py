"""Dial-in through the whole product (issue 15): a real `telemeeting serve` with a dial-in
number; a baresip phone calls in and keys a wrong PIN three times (released, no leg), calls
again, keys the meeting number and PIN as RFC 4733 events, joins the meeting the API created and
is mixed N-1 with two phones the server dialled; the API mutes and kicks it; its pushes are
callin → answer → one disconnect, with one `Call` CDR marked "in"."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

import pytest

from tests.servers import member
from tests.sip.peers import (
    HOST,
    Baresip,
    all_answered,
    band_levels,
    call_api,
    key_in,
    numbers_of,
    read_wav,
    recordings_toml,
    serving_phones,
    tone_phones,
    tones_of,
)

pytestmark = [pytest.mark.timeout(150), pytest.mark.baresip]

RATE = 8000
DIALIN = "4000"
PEERS = {
    "alice": ("13800000001", 440.0),
    "bob": ("13800000002", 660.0),
    "13900000009": ("13900000009", 1000.0),  # the caller: its SIP user is its number
}
CALLER = "13900000009"
TONES = [tone for _, tone in PEERS.values()]


def dialin_toml(tmp_path: Path, trusted: str = HOST) -> str:
    """Keys of [sip] (they follow its other keys), then the dial-in number and recordings."""
    return (
        f'trusted_sources = ["{trusted}"]\n\n'
        f'[[sip.dialin]]\nnumber = "{DIALIN}"\n\n' + recordings_toml(tmp_path)
    )


def sip_port(tmp_path: Path) -> int:
    config = tomllib.loads((tmp_path / "telemeeting.toml").read_text())
    return int(config["sip"]["local_port"])


def phones(tmp_path: Path) -> list[Baresip]:
    return tone_phones(tmp_path, tones_of(PEERS), seconds=60)  # hangs up when its file ends


def dave_in(meeting: dict) -> bool:
    return any(
        m["phone"] == CALLER and m["state"] == "answer" and m["direction"] == "in"
        for m in meeting["members"]
    )


async def test_caller_dials_in_is_mixed_muted_and_kicked(tmp_path: Path) -> None:
    peers = phones(tmp_path)
    alice, _bob, dave = peers
    async with serving_phones(
        tmp_path, peers, numbers_of(PEERS), extra=dialin_toml(tmp_path)
    ) as api:
        created = await call_api(
            api,
            {
                "action": "createMeeting",
                "parties": [{"phone": PEERS["alice"][0]}, {"phone": PEERS["bob"][0]}],
                "dialin": "1",
                "pin": "2468",
                "customParm": "dial-in test",
            },
        )
        meid = created["meid"]
        assert created["pin"] == "2468" and created["dialinnumbers"] == [DIALIN]
        await asyncio.to_thread(api.wait_for, meid, all_answered, "production", 20)
        # the right meeting with a wrong PIN three times: told so, then goodbye and released
        await dave.command("dial", f"sip:{DIALIN}@{HOST}:{sip_port(tmp_path)}")
        await dave.wait_event("CALL_ESTABLISHED")
        for _ in range(3):
            await key_in(dave, f"{meid}#1357#", gap=0.2)
            await asyncio.sleep(0.3)
        await dave.wait_event("CALL_CLOSED", timeout=20)
        # then with the right one
        await dave.command("dial", f"sip:{DIALIN}@{HOST}:{sip_port(tmp_path)}")
        await dave.wait_event("CALL_ESTABLISHED", count=2)
        await key_in(dave, f"{meid}#2468#")
        meeting = await asyncio.to_thread(api.wait_for, meid, dave_in, "production", 30)
        assert meeting["pin"] == "2468" and meeting["dialinnumbers"] == [DIALIN]
        assert member(meeting, PEERS["alice"][0])["direction"] == "out"
        await asyncio.sleep(3.0)  # everyone talks
        ref = {"confid": meid, "phone": CALLER}
        await call_api(api, {"action": "muteMeetingMember", **ref})
        await asyncio.sleep(2.5)  # dave is muted
        await call_api(api, {"action": "holdMeetingMember", **ref})  # hold works on it too
        held = await asyncio.to_thread(api.query, meid, "production")
        assert member(held, CALLER)["held"] is True
        await call_api(api, {"action": "unholdMeetingMember", **ref})
        await call_api(api, {"action": "kickMeetingMember", **ref})
        await dave.wait_event("CALL_CLOSED", count=2, timeout=15)
        await call_api(api, {"action": "destroyMeeting", "confid": meid})
        for peer in peers[:2]:
            await peer.wait_event("CALL_CLOSED", timeout=15)
        events = await asyncio.to_thread(
            api.post,
            {"action": "queryMeetingEvents", "confid": meid},
            env="production",
            func_url="MeetingQuery.wx",
        )
        meeting = await asyncio.to_thread(api.query, meid, "production")
    theirs = [e for e in events.body["events"] if e["body"].get("dsc") == CALLER]
    assert [(e["body"]["state"], e["body"]["stateDesc"]) for e in theirs] == [
        ("callin", "呼入"),
        ("answer", "接听"),
        ("disconnect", "应答|被踢出"),
    ]
    assert all(e["body"]["customParm"] == "dial-in test" for e in theirs)
    cdrs = [
        entry
        for e in events.body["events"]
        if e["type"] == "Call"
        for entry in e["body"]["cdr"]
        if entry["called"] == CALLER
    ]
    assert len(cdrs) == 1 and cdrs[0]["direction"] == "in" and cdrs[0]["caller"] == DIALIN
    assert cdrs[0]["customParm"] == "dial-in test"
    assert member(meeting, CALLER)["stateDesc"] == "应答|被踢出"
    assert [m["phone"] for m in meeting["members"]].count(CALLER) == 1  # wrong PINs: no leg
    # dave heard alice and bob once joined (the last second before the kick), not himself
    # the first call heard the IVR's spoken prompts (espeak-ng, rendered when the server started)
    ivr_call = sorted((dave.dir / "rec").glob("*-dec.wav"))[0]
    spoken = read_wav(ivr_call)
    assert len(spoken) > RATE and float((spoken**2).mean()) ** 0.5 > 300, "no prompt heard"
    heard = read_wav(dave.recording())  # the second call's
    levels = band_levels(heard[-RATE * 3 : -RATE // 2], TONES)
    assert min(levels[440.0], levels[660.0]) - levels[1000.0] >= 25, levels
    # alice heard dave before the mute, and not after it (her recording ends at the destroy,
    # just after the kick: the mute covers its last 2.5 s)
    alice_heard = read_wav(alice.recording())
    unmuted = band_levels(alice_heard[-int(RATE * 5.2) : -int(RATE * 3.2)], TONES)
    muted = band_levels(alice_heard[-int(RATE * 2.0) : -int(RATE * 0.3)], TONES)
    assert unmuted[1000.0] - unmuted[440.0] >= 25, unmuted
    assert muted[660.0] - muted[1000.0] >= 25, muted
