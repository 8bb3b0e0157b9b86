"""The whole product with real phones: invited through the HTTP API, dialled over SIP by the media
node process, mixed N-1, muted and hung up through the API (issues 5 and 6)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.servers import member
from tests.sip.peers import (
    PEERS,
    RATE,
    Baresip,
    all_answered,
    band_levels,
    numbers_of,
    read_wav,
    serving_phones,
    tone_phones,
    tones_of,
)

pytestmark = [pytest.mark.timeout(120), pytest.mark.baresip]

FREQUENCIES = [tone for _, tone in PEERS.values()]


def _levels(peer: Baresip, start: float, end: float | None = None) -> dict[float, float]:
    samples = read_wav(peer.recording())
    stop = None if end is None else int(end * RATE)
    return band_levels(samples[int(start * RATE) : stop], FREQUENCIES)


async def test_conference_through_the_api(tmp_path: Path) -> None:
    peers = tone_phones(tmp_path, tones_of(PEERS))
    async with serving_phones(tmp_path, peers, numbers_of(PEERS)) as api:
        phones = [number for number, _ in PEERS.values()]
        meid = await asyncio.to_thread(
            api.create_meeting, "production", parties=[{"phone": p} for p in phones]
        )
        await asyncio.to_thread(api.wait_for, meid, all_answered, "production", 20)
        await asyncio.sleep(3.0)  # everyone talks
        carol = PEERS["carol"][0]
        muted = await asyncio.to_thread(
            api.post,
            {"action": "muteMeetingMember", "confid": meid, "phone": carol},
            env="production",
        )
        assert muted.code == "0"
        await asyncio.sleep(3.0)  # carol is muted
        destroyed = await asyncio.to_thread(
            api.post, {"action": "destroyMeeting", "confid": meid}, env="production"
        )
        assert destroyed.code == "0"
        for peer in peers:
            await peer.wait_event("CALL_CLOSED", timeout=15)
        meeting = await asyncio.to_thread(api.query, meid, "production")
        for phone in phones:
            assert member(meeting, phone)["stateDesc"] == "应答|会议结束"
        events = await asyncio.to_thread(
            api.post,
            {"action": "queryMeetingEvents", "confid": meid},
            env="production",
            func_url="MeetingQuery.wx",
        )
        disconnects = [
            e["body"]["dsc"]
            for e in events.body["events"]
            if e["type"] == "CallState" and e["body"]["state"] == "disconnect"
        ]
        assert sorted(disconnects) == sorted(phones)  # exactly one terminal event per leg

    # Before the mute (0.5–2.5 s after answer): each hears the other two, not itself.
    for peer in peers:
        levels = _levels(peer, 0.5, 2.5)
        own = levels[PEERS[peer.name][1]]
        others = [levels[tone] for name, (_, tone) in PEERS.items() if name != peer.name]
        assert min(others) - own >= 25, (peer.name, levels)
    # After the mute (the last 2 s): alice and bob no longer hear carol.
    for peer in peers[:2]:
        levels = _levels(peer, -2.0 + len(read_wav(peer.recording())) / RATE)
        other = "bob" if peer.name == "alice" else "alice"
        assert levels[PEERS[other][1]] - levels[PEERS["carol"][1]] >= 25, (peer.name, levels)


def test_serve_refuses_a_taken_sip_port(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    from tests.servers import free_port

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        config = tmp_path / "telemeeting.toml"
        config.write_text(
            f'[sip]\nlocal_port = {port}\n\n[[sip.routes]]\nmatch = "^1"\n'
            'target = "sip:{number}@127.0.0.1:9"\n'
        )
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "telemeeting",
                "serve",
                "--config",
                str(config),
                "--db",
                f"sqlite+aiosqlite:///{tmp_path / 'tm.db'}",
                "--port",
                str(free_port()),
                "--sandbox-port",
                str(free_port()),
                "--no-demo",
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )
    assert result.returncode == 1
    assert f"cannot bind SIP {port}" in result.stderr and "Traceback" not in result.stderr
