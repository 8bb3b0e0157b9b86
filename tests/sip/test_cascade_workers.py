"""One meeting across two media worker processes of one server (issue 16), with real phones:
`[media] workers = 2` and `[placement] max_legs_per_node = 2`, so alice and bob are dialled from
worker 0 (the meeting's home) and carol, invited third, from worker 1, linked to worker 0.
Each phone plays its own tone; what each heard is its own baresip recording, and the meeting's
recording (on the home) is the full mix."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sip import test_dialin as dialin
from tests.sip.peers import (
    HOST,
    PEERS,
    RATE,
    Baresip,
    answered,
    band_levels,
    call_api,
    decode_mp3,
    key_in,
    numbers_of,
    read_wav,
    recordings_toml,
    serving_phones,
    tone_phones,
    tones_of,
    write_tone,
)

pytestmark = [pytest.mark.timeout(150), pytest.mark.baresip]

TONES = tones_of(PEERS)
PLACEMENT = "[media]\nworkers = 2\n\n[placement]\nmax_legs_per_node = 2\n\n"


def _levels(samples: Any, start: float, end: float) -> dict[str, float]:
    levels = band_levels(samples[int(start * RATE) : int(end * RATE)], list(TONES.values()))
    return {name: levels[tone] for name, tone in TONES.items()}


async def test_a_meeting_on_two_workers_with_real_phones(tmp_path: Path) -> None:
    peers = tone_phones(tmp_path, TONES, seconds=40)
    alice, bob, carol = peers
    phones = numbers_of(PEERS)
    marks: dict[str, float] = {}
    extra = recordings_toml(tmp_path) + PLACEMENT
    async with serving_phones(tmp_path, peers, phones, extra) as api:

        async def post(action: str, **params: Any) -> None:
            reply = await asyncio.to_thread(
                api.post, {"action": action, "confid": meid, **params}, env="production"
            )
            assert reply.code == "0", reply.body

        meid = await asyncio.to_thread(
            api.create_meeting,
            "production",
            record="1",
            beep="0",
            parties=[{"phone": phones["alice"]}, {"phone": phones["bob"]}],
        )
        two = [phones["alice"], phones["bob"]]
        await asyncio.to_thread(api.wait_for, meid, answered(two), "production", 20)
        assert "sip_driver.meeting_extended" not in api.server.log()
        invited = await asyncio.to_thread(api.invite, meid, phones["carol"], env="production")
        assert invited.code == "0", invited.body
        await asyncio.to_thread(
            api.wait_for, meid, answered(list(phones.values())), "production", 20
        )
        marks["start"] = time.monotonic()  # recordings are aligned on their ends below
        # The home was full: the meeting was extended to worker 1 for carol.
        assert "sip_driver.meeting_extended" in api.server.log(), api.server.log()[-3000:]
        await asyncio.sleep(3.0)  # everyone hears the two others
        await post("muteMeetingMember", phone=phones["carol"])  # carol is on worker 1
        marks["muted"] = time.monotonic()
        await asyncio.sleep(2.5)
        await post("unmuteMeetingMember", phone=phones["carol"])
        await asyncio.sleep(0.5)
        # The home's last local legs end; the meeting (and its recording) go on with carol.
        await alice.command("hangup")
        await bob.command("hangup")
        await alice.wait_event("CALL_CLOSED", timeout=15)
        await bob.wait_event("CALL_CLOSED", timeout=15)
        marks["alone"] = time.monotonic()
        await asyncio.sleep(2.0)
        await carol.command("hangup")
        await carol.wait_event("CALL_CLOSED", timeout=15)
        marks["end"] = time.monotonic()
        meeting = await asyncio.to_thread(
            api.wait_for,
            meid,
            lambda m: bool(m.get("recordings")) and m["recordings"][0]["bytes"] > 0,
            "production",
            20,
        )
        response = await asyncio.to_thread(httpx.get, meeting["recordings"][0]["url"], timeout=10)
        assert response.status_code == 200

    def since_start(peer: Baresip) -> Any:
        """The peer's recording from carol's answer on (it ends when the peer hung up)."""
        samples = read_wav(peer.recording())
        ended = {"alice": marks["alone"], "bob": marks["alone"], "carol": marks["end"]}
        before = ended[peer.name] - marks["start"]
        return samples[max(0, len(samples) - int(before * RATE)) :]

    muted_at = marks["muted"] - marks["start"]
    for peer in peers:  # all three: each hears the two others and not itself
        heard = _levels(since_start(peer), 0.7, muted_at - 0.3)
        others = [name for name in TONES if name != peer.name]
        for other in others:
            assert heard[other] - heard[peer.name] >= 20, (peer.name, heard)
    for peer, other in ((alice, "bob"), (bob, "alice")):  # carol muted on worker 1
        heard = _levels(since_start(peer), muted_at + 0.7, muted_at + 2.2)
        assert heard[other] - heard["carol"] >= 25, (peer.name, heard)

    mix = decode_mp3(response.content, tmp_path)
    # The recording's last two seconds: carol alone on worker 1, recorded by the home (worker 0).
    tail = band_levels(mix[-int(1.5 * RATE) - RATE // 4 : -RATE // 4], list(TONES.values()))
    assert tail[TONES["carol"]] - max(tail[TONES["alice"]], tail[TONES["bob"]]) >= 20, tail
    # Before the mute, all three tones are in the home's recording (the full mix).
    full = len(mix) / RATE - (marks["end"] - marks["start"])
    levels = _levels(mix, full + 0.7, full + muted_at - 0.3)
    assert max(levels.values()) - min(levels.values()) <= 6, levels


async def test_a_caller_dialling_in_on_the_other_worker_joins_the_meeting(tmp_path: Path) -> None:
    """Alice is dialled from worker 0; the caller calls worker 1's SIP port, which does not
    carry the meeting: it is extended there (issue 16, item 2) instead of being refused."""
    used = ("alice", dialin.CALLER)  # bob is not needed here
    peers = tone_phones(tmp_path, {name: dialin.PEERS[name][1] for name in used}, seconds=60)
    alice, dave = peers
    tones = {"alice": dialin.PEERS["alice"][1], "dave": dialin.PEERS[dialin.CALLER][1]}
    extra = dialin.dialin_toml(tmp_path) + "[media]\nworkers = 2\n\n"
    async with serving_phones(tmp_path, peers, numbers_of(dialin.PEERS), extra) as api:
        meid = (
            await call_api(
                api,
                {
                    "action": "createMeeting",
                    "parties": [{"phone": dialin.PEERS["alice"][0]}],
                    "dialin": "1",
                    "pin": "2468",
                },
            )
        )["meid"]
        await asyncio.to_thread(
            api.wait_for, meid, answered([dialin.PEERS["alice"][0]]), "production", 20
        )
        other_worker = dialin.sip_port(tmp_path) + 1
        await dave.command("dial", f"sip:{dialin.DIALIN}@{HOST}:{other_worker}")
        await dave.wait_event("CALL_ESTABLISHED")
        await key_in(dave, f"{meid}#2468#")
        await asyncio.to_thread(api.wait_for, meid, dialin.dave_in, "production", 30)
        started = time.monotonic()
        assert "sip_driver.meeting_extended" in api.server.log(), api.server.log()[-3000:]
        await asyncio.sleep(3.0)
        ref = {"confid": meid, "phone": dialin.CALLER}
        await call_api(api, {"action": "muteMeetingMember", **ref})  # on worker 1
        muted = time.monotonic()
        await asyncio.sleep(2.5)
        await call_api(api, {"action": "destroyMeeting", "confid": meid})
        for peer in peers:
            await peer.wait_event("CALL_CLOSED", timeout=15)
        ended = time.monotonic()

    def heard(peer: Baresip, start: float, end: float) -> dict[str, float]:
        samples = read_wav(peer.recording())
        offset = len(samples) / RATE - (ended - started)  # aligned on the call's end
        window = samples[int((offset + start) * RATE) : int((offset + end) * RATE)]
        levels = band_levels(window, list(tones.values()))
        return {name: levels[tone] for name, tone in tones.items()}

    unmuted = heard(alice, 0.7, muted - started - 0.3)
    assert unmuted["dave"] - unmuted["alice"] >= 20, unmuted
    hears = heard(dave, 0.7, muted - started - 0.3)
    assert hears["alice"] - hears["dave"] >= 20, hears
    silenced = heard(alice, muted - started + 0.7, muted - started + 2.0)
    assert unmuted["dave"] - silenced["dave"] >= 25, (unmuted, silenced)


#: For the in-call media test: alice (worker 0) and carol (worker 1) talk, bob (worker 0) is
#: silent; the tones keep clear of the beeps (800 and 1200 Hz) and the hold music's notes.
MEDIA_TONES = {"alice": 1150.0, "bob": 0.0, "carol": 1450.0}
TO_ALL, TO_CAROL, LOOP, MUSIC, FLOOR = 1700.0, 1900.0, 2100.0, 261.63, 1600.0
#: The join beep's first note, and a band beside it: a beep is a narrow peak, while a voice
#: starting (a tone's onset) spreads energy over both.
BEEP, BESIDE = 800.0, 950.0


async def test_beeps_prompts_hold_and_speakers_across_workers(tmp_path: Path) -> None:
    """Everything a meeting does besides voices, with carol on worker 1 and alice and bob on
    worker 0: carol's join beep is heard by alice and bob, alice's leave beep by carol, carol
    kicked (worker 1 hangs her up) beeps at bob; a prompt
    to everyone reaches both workers, one to carol only her; carol held hears the music and is
    not heard; a looping prompt stops on both workers; the speaker events name alice and carol
    together (each worker detects its own members)."""
    from tests.servers import member
    from tests.sip.test_prompts_hold import PRIVATE_URLS, _prompt_wav, _serve

    site = tmp_path / "site"
    site.mkdir()
    _prompt_wav(site / "all.wav", TO_ALL)
    _prompt_wav(site / "carol.wav", TO_CAROL)
    _prompt_wav(site / "loop.wav", LOOP, seconds=0.6)
    peers = []
    for name, tone in MEDIA_TONES.items():
        wav = tmp_path / f"{name}.wav"
        write_tone(wav, tone or 440.0, seconds=60, level=0.25 if tone else 0.0)
        peers.append(Baresip(tmp_path, name, wav))
    alice, bob, carol = peers
    phones = numbers_of(PEERS)
    marks: dict[str, float] = {}
    extra = recordings_toml(tmp_path) + PLACEMENT + PRIVATE_URLS
    with _serve(site) as base:
        async with serving_phones(tmp_path, peers, phones, extra) as api:

            async def post(action: str, **params: Any) -> None:
                await call_api(api, {"action": action, "confid": meid, **params})

            def speaking(*names: str) -> Any:
                def check(meeting: dict[str, Any]) -> bool:
                    talking = {n for n in phones if member(meeting, phones[n])["speaking"]}
                    return talking == set(names)

                return check

            meid = await asyncio.to_thread(
                api.create_meeting,
                "production",
                beep="3",
                speakerevents="1",
                parties=[{"phone": phones["alice"]}, {"phone": phones["bob"]}],
            )
            two = [phones["alice"], phones["bob"]]
            await asyncio.to_thread(api.wait_for, meid, answered(two), "production", 20)
            await asyncio.sleep(2.0)  # their own join beeps are over
            invited = await asyncio.to_thread(api.invite, meid, phones["carol"], env="production")
            assert invited.code == "0", invited.body
            await asyncio.to_thread(api.wait_for, meid, answered(phones.values()), "production", 20)
            marks["carol_in"] = time.monotonic()
            assert "sip_driver.meeting_extended" in api.server.log()
            await asyncio.to_thread(
                api.wait_for, meid, speaking("alice", "carol"), "production", 10
            )
            await asyncio.sleep(max(0.0, marks["carol_in"] + 3.0 - time.monotonic()))
            await post("playMeetingPrompt", url=f"{base}/all.wav")
            marks["to_all"] = time.monotonic()
            await asyncio.sleep(2.5)
            await post("playMeetingPrompt", url=f"{base}/carol.wav", phone=phones["carol"])
            marks["to_carol"] = time.monotonic()
            await asyncio.sleep(2.5)
            await post("holdMeetingMember", phone=phones["carol"])
            marks["held"] = time.monotonic()
            meeting = await asyncio.to_thread(api.query, meid, "production")
            assert member(meeting, phones["carol"])["held"] is True
            await asyncio.sleep(2.5)
            await post("unholdMeetingMember", phone=phones["carol"])
            marks["unheld"] = time.monotonic()
            await post("playMeetingPrompt", url=f"{base}/loop.wav", loop="1")
            marks["loop"] = time.monotonic()
            await asyncio.sleep(2.5)
            await post("stopMeetingPrompt")
            marks["stopped"] = time.monotonic()
            await asyncio.sleep(2.0)
            marks["silent"] = time.monotonic()
            await post("muteMeetingMember", phone=phones["carol"])
            await asyncio.to_thread(api.wait_for, meid, speaking("alice"), "production", 10)
            await alice.command("hangup")
            await alice.wait_event("CALL_CLOSED", timeout=15)
            marks["alice_left"] = time.monotonic()
            await asyncio.sleep(2.0)
            await post("kickMeetingMember", phone=phones["carol"])  # on worker 1
            await carol.wait_event("CALL_CLOSED", timeout=15)
            marks["carol_out"] = time.monotonic()
            meeting = await asyncio.to_thread(api.query, meid, "production")
            assert member(meeting, phones["carol"])["stateDesc"].endswith("被踢出"), meeting
            await asyncio.sleep(2.0)
            await post("destroyMeeting")
            await bob.wait_event("CALL_CLOSED", timeout=15)
            marks["end"] = time.monotonic()
            events = await call_api(
                api, {"action": "queryMeetingEvents", "confid": meid}, func_url="MeetingQuery.wx"
            )

    def heard(peer: Baresip, start: str, end: str, lead: float = 0.4, tail: float = 0.2) -> Any:
        """What `peer` heard from mark `start` (+ lead) to mark `end` (- tail); its recording
        is aligned on the moment its call closed."""
        samples = read_wav(peer.recording())
        closed = marks[{"alice": "alice_left", "carol": "carol_out"}.get(peer.name, "end")]
        offset = len(samples) / RATE - closed
        first, last = marks[start] + lead + offset, marks[end] - tail + offset
        window = samples[int(first * RATE) : int(last * RATE)]
        tones = [t for t in MEDIA_TONES.values() if t]
        return band_levels(window, [*tones, TO_ALL, TO_CAROL, LOOP, MUSIC, BEEP, BESIDE, FLOOR])

    def beep(levels: dict[float, float]) -> float:
        return levels[BEEP] - levels[BESIDE]

    # Carol's join on worker 1 beeps on worker 0 too, alice's leave on worker 0 on worker 1, and
    # carol kicked on worker 1 on worker 0.
    marks["before_in"] = marks["carol_in"] - 1.5
    for peer in (alice, bob):
        joined = heard(peer, "before_in", "carol_in", lead=0.0, tail=-0.5)
        quiet = heard(peer, "carol_in", "to_all", lead=0.7)
        assert beep(joined) >= 20 and beep(quiet) < 10, (peer.name, joined, quiet)
    marks["after_left"] = marks["alice_left"] + 1.2
    left = heard(carol, "alice_left", "after_left", lead=-0.5, tail=0.0)
    quiet = heard(carol, "after_left", "carol_out", lead=0.0, tail=0.3)
    assert beep(left) >= 20 and beep(quiet) < 10, (left, quiet)
    marks["after_out"] = marks["carol_out"] + 1.2
    kicked = heard(bob, "carol_out", "after_out", lead=-0.5, tail=0.0)
    quiet = heard(bob, "after_out", "end", lead=0.0, tail=0.3)
    assert beep(kicked) >= 20 and beep(quiet) < 10, (kicked, quiet)
    # The prompt to everyone, on both workers; the prompt to carol, hers only.
    for peer in peers:
        levels = heard(peer, "to_all", "to_carol")
        assert levels[TO_ALL] - levels[FLOOR] >= 25, (peer.name, levels)
    to_carol = {peer.name: heard(peer, "to_carol", "held") for peer in peers}
    assert to_carol["carol"][TO_CAROL] - to_carol["carol"][FLOOR] >= 25, to_carol["carol"]
    for name in ("alice", "bob"):
        assert to_carol["carol"][TO_CAROL] - to_carol[name][TO_CAROL] >= 30, (name, to_carol)
    # Carol held on worker 1: she hears the music, not alice; alice no longer hears her.
    held = {peer.name: heard(peer, "held", "unheld") for peer in peers}
    talking = heard(alice, "to_carol", "held")
    assert held["carol"][MUSIC] - held["carol"][MEDIA_TONES["alice"]] >= 20, held["carol"]
    assert talking[MEDIA_TONES["carol"]] - held["alice"][MEDIA_TONES["carol"]] >= 25, held
    assert held["carol"][MUSIC] - held["alice"][MUSIC] >= 25, held
    # The looping prompt plays on both workers until stopMeetingPrompt, then on neither.
    for peer in peers:
        looping, after = heard(peer, "loop", "stopped"), heard(peer, "stopped", "silent")
        assert looping[LOOP] - looping[FLOOR] >= 25, (peer.name, looping)
        assert looping[LOOP] - after[LOOP] >= 25, (peer.name, looping, after)
    # Speaker events: alice and carol named together, then alice alone once carol is muted.
    said = [
        sorted(e["body"]["speakers"])
        for e in events["events"]
        if e["type"] == "MeetingState" and e["body"]["state"] == "speakers"
    ]
    both = sorted([phones["alice"], phones["carol"]])
    assert both in said, said
    assert [phones["alice"]] in said[said.index(both) :], said  # carol muted
