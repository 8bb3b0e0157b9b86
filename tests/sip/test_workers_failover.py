"""A media worker process dying under a meeting that spans two workers of one server (issue 16),
with real phones: `[media] workers = 2`, `max_legs_per_node = 2`, so alice and bob are dialled
from worker 0 (the meeting's home) and carol and dave from worker 1. The worker is killed with
SIGKILL, found by the SIP port it listens on (worker i listens on `local_port + i`).

* Worker 1 dies: only carol's and dave's legs end (one `disconnect` and one CDR each), alice and
  bob go on hearing each other.
* Worker 0, the home, dies: alice's and bob's legs end, carol and dave go on, and the recording
  goes on in a new segment on worker 1, which queryMeeting lists after the first.

The phones on the dead worker are released: the surviving worker sends each the BYE of the
dialog the dead one had reported when the call was answered.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sip.peers import (
    RATE,
    Baresip,
    answered,
    band_levels,
    call_api,
    decode_mp3,
    numbers_of,
    read_wav,
    recordings_toml,
    serving_phones,
    tone_phones,
    tones_of,
)
from tests.sip.test_dialin import sip_port

pytestmark = [pytest.mark.timeout(150), pytest.mark.baresip]

PHONES = {
    "alice": ("13800000001", 440.0),
    "bob": ("13800000002", 660.0),
    "carol": ("13800000003", 880.0),
    "dave": ("13800000004", 1100.0),
}
TONES = tones_of(PHONES)
NUMBERS = numbers_of(PHONES)
PLACEMENT = "[media]\nworkers = 2\n\n[placement]\nmax_legs_per_node = 2\n\n"


def worker_pid(server_pid: int, port: int) -> int:
    """The child process of the server that has UDP `port` open (a media worker's SIP port)."""
    inodes = set()
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port:
            inodes.add(f"socket:[{fields[9]}]")
    assert inodes, f"nothing listens on UDP {port}"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent != server_pid:
                continue
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                return int(proc.name)
        except OSError:
            continue
    raise AssertionError(f"no child of {server_pid} has UDP {port} open")


def _levels(peer: Baresip, ended: float, start: float, end: float) -> dict[str, float]:
    """What `peer` heard between two moments (monotonic), its recording aligned on `ended`,
    the moment its call closed."""
    samples = read_wav(peer.recording())
    offset = len(samples) / RATE - ended
    window = samples[int((offset + start) * RATE) : int((offset + end) * RATE)]
    levels = band_levels(window, list(TONES.values()))
    return {name: levels[tone] for name, tone in TONES.items()}


def _hear_only_each_other(one: Baresip, two: Baresip, killed: float, ended: float) -> None:
    """The two survivors heard each other after the kill, and neither themselves nor the
    phones lost with the dead worker."""
    for peer, other in ((one, two.name), (two, one.name)):
        after = _levels(peer, ended, killed + 0.7, ended - 0.5)
        rest = [level for name, level in after.items() if name != other]
        assert after[other] - max(rest) >= 20, (peer.name, after)


async def _events(api: Any, meid: str) -> list[dict[str, Any]]:
    body = await call_api(
        api, {"action": "queryMeetingEvents", "confid": meid}, func_url="MeetingQuery.wx"
    )
    return list(body["events"])


def _disconnects(events: list[dict[str, Any]], phone: str) -> int:
    return sum(
        1
        for e in events
        if e["type"] == "CallState"
        and e["body"].get("dsc") == phone
        and e["body"]["state"] == "disconnect"
    )


def _cdrs(events: list[dict[str, Any]], phone: str) -> int:
    return sum(
        1
        for e in events
        if e["type"] == "Call"
        for entry in e["body"]["cdr"]
        if entry["called"] == phone
    )


def _states(meeting: dict[str, Any]) -> dict[str, str]:
    return {m["phone"]: m["state"] for m in meeting["members"]}


async def _meeting_on_two_workers(api: Any, record: bool) -> str:
    meid = await asyncio.to_thread(
        api.create_meeting,
        "production",
        record="1" if record else "0",
        beep="0",
        parties=[{"phone": NUMBERS[name]} for name in PHONES],
    )
    await asyncio.to_thread(api.wait_for, meid, answered(NUMBERS.values()), "production", 30)
    assert "sip_driver.meeting_extended" in api.server.log()
    return meid


async def test_a_dead_worker_ends_only_its_own_phones(tmp_path: Path) -> None:
    peers = tone_phones(tmp_path, TONES, seconds=60)
    alice, bob, carol, dave = peers
    extra = recordings_toml(tmp_path) + PLACEMENT
    async with serving_phones(tmp_path, peers, NUMBERS, extra) as api:
        meid = await _meeting_on_two_workers(api, record=False)
        await asyncio.sleep(1.5)
        os.kill(worker_pid(api.server.process.pid, sip_port(tmp_path) + 1), signal.SIGKILL)
        killed = time.monotonic()
        lost = [NUMBERS["carol"], NUMBERS["dave"]]

        def only_worker_1_ended(meeting: dict[str, Any]) -> bool:
            states = _states(meeting)
            return all(states[p] == "disconnect" for p in lost)

        meeting = await asyncio.to_thread(api.wait_for, meid, only_worker_1_ended, "production", 15)
        for peer in (carol, dave):  # released by worker 0's BYE
            await peer.wait_event("CALL_CLOSED", timeout=10)
        assert meeting["state"] != "ended"
        assert _states(meeting)[NUMBERS["alice"]] == _states(meeting)[NUMBERS["bob"]] == "answer"
        await asyncio.sleep(3.0)  # alice and bob talk on
        assert "CALL_CLOSED" not in alice.event_types() + bob.event_types()
        events = await _events(api, meid)
        for phone in lost:
            assert (_disconnects(events, phone), _cdrs(events, phone)) == (1, 1), phone
        for phone in (NUMBERS["alice"], NUMBERS["bob"]):
            assert (_disconnects(events, phone), _cdrs(events, phone)) == (0, 0), phone
        await call_api(api, {"action": "destroyMeeting", "confid": meid})
        for peer in (alice, bob):
            await peer.wait_event("CALL_CLOSED", timeout=15)
        ended = time.monotonic()
        events = await _events(api, meid)
        for phone in NUMBERS.values():  # still one each: nothing said twice about carol, dave
            assert (_disconnects(events, phone), _cdrs(events, phone)) == (1, 1), phone

    _hear_only_each_other(alice, bob, killed, ended)


async def test_the_home_dying_moves_the_meeting_and_its_recording(tmp_path: Path) -> None:
    peers = tone_phones(tmp_path, TONES, seconds=60)
    alice, bob, carol, dave = peers
    extra = recordings_toml(tmp_path) + PLACEMENT
    async with serving_phones(tmp_path, peers, NUMBERS, extra) as api:
        meid = await _meeting_on_two_workers(api, record=True)
        await asyncio.sleep(2.0)
        os.kill(worker_pid(api.server.process.pid, sip_port(tmp_path)), signal.SIGKILL)
        killed = time.monotonic()
        lost = [NUMBERS["alice"], NUMBERS["bob"]]
        meeting = await asyncio.to_thread(
            api.wait_for,
            meid,
            lambda m: (
                len(m["recordings"]) == 2 and all(_states(m)[p] == "disconnect" for p in lost)
            ),
            "production",
            15,
        )
        assert _states(meeting)[NUMBERS["carol"]] == _states(meeting)[NUMBERS["dave"]] == "answer"
        assert "sip_driver.home_moved" in api.server.log()
        for peer in (alice, bob):  # released by worker 1's BYE
            await peer.wait_event("CALL_CLOSED", timeout=10)
        await asyncio.sleep(3.0)  # carol and dave talk on, recorded by worker 1
        await call_api(api, {"action": "destroyMeeting", "confid": meid})
        for peer in (carol, dave):
            await peer.wait_event("CALL_CLOSED", timeout=15)
        ended = time.monotonic()
        meeting = await asyncio.to_thread(
            api.wait_for,
            meid,
            lambda m: m["state"] == "ended" and m["recordings"][1]["bytes"] > 0,
            "production",
            20,
        )
        first, second = meeting["recordings"]
        assert first["end"] == second["start"], meeting["recordings"]
        response = await asyncio.to_thread(httpx.get, second["url"], timeout=10)
        assert response.status_code == 200
        events = await _events(api, meid)
        for phone in NUMBERS.values():
            assert (_disconnects(events, phone), _cdrs(events, phone)) == (1, 1), phone

    _hear_only_each_other(carol, dave, killed, ended)
    # The new segment, recorded on worker 1 from the move on, holds carol and dave (not the
    # phones that were lost with worker 0), for about as long as it ran.
    mix = decode_mp3(response.content, tmp_path)
    assert abs(len(mix) / RATE - (ended - killed)) < 1.5, (len(mix) / RATE, ended - killed)
    levels = band_levels(mix[RATE // 2 : -RATE // 2], list(TONES.values()))
    heard = {name: levels[tone] for name, tone in TONES.items()}
    assert min(heard["carol"], heard["dave"]) - max(heard["alice"], heard["bob"]) >= 20, heard
