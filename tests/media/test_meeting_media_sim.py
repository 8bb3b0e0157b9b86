"""Issue 14's later pieces through the HTTP API on the simulated carrier (a real server process):
a booked meeting's media settings applied when it starts, stopMeetingPrompt silencing a looping
prompt (checked in the recording), `endoncreatorleave` when the creator is kicked, and prompt
URLs on loopback refused unless `[prompts] allow_private_urls`."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
import wave
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pytest

from tests.media.test_recording_api import PHONES, _answered, _decode, _finished
from tests.servers import Api, Server, database_url, drop_pg_database, start_server
from tests.sip.peers import band_levels

pytestmark = pytest.mark.timeout(120)

LOOP_TONE = 2300.0  # above the synthetic voices' harmonics (< 2 kHz)
QUIET_BAND = 2450.0


@pytest.fixture(scope="module")
def served(db_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Api]]:
    """One server per database kind for this module's tests (each uses meetings of its own)."""
    tmp = tmp_path_factory.mktemp(f"media-sim-{db_kind}")
    url = database_url(db_kind, tmp)
    env = {
        "TELEMEETING_RECORDINGS_DIRECTORY": str(tmp / "recordings"),
        "TELEMEETING_PROMPTS_ALLOW_PRIVATE_URLS": "true",  # the prompt site is on loopback
    }
    server = start_server(url, tmp, env)
    try:
        yield server, Api(server, server.new_tenant())
    finally:
        server.stop()
        if db_kind == "postgres":
            drop_pg_database(url)


@contextlib.contextmanager
def _site(directory: Path) -> Iterator[str]:
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(directory))  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _tone_wav(path: Path, frequency: float, seconds: float) -> None:
    t = np.arange(int(8000 * seconds)) / 8000
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes((0.4 * np.sin(2 * np.pi * frequency * t) * 32767).astype("<i2").tobytes())


def _events(api: Api, meid: str) -> list[dict[str, Any]]:
    reply = api.post({"action": "queryMeetingEvents", "confid": meid}, func_url="MeetingQuery.wx")
    assert reply.code == "0", reply.body
    return list(reply.body["events"])


def _speaker_events(api: Api, meid: str) -> list[list[str]]:
    return [
        e["body"]["speakers"]
        for e in _events(api, meid)
        if e["type"] == "MeetingState" and e["body"]["state"] == "speakers"
    ]


def test_a_booked_meeting_records_and_reports_speakers_once_started(
    served: tuple[Server, Api], tmp_path: Path
) -> None:
    _, api = served
    start = datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(seconds=2)
    meid = api.create_meeting(
        bookmeeting="1",
        booktime=start.strftime("%Y%m%d%H%M%S"),
        record="1",
        speakerevents="1",
        beep="1",
        parties=[{"phone": PHONES[0]}, {"phone": PHONES[1], "muted": "1"}],
    )
    booked = api.query(meid)
    assert booked["state"] == "booked" and "recordings" not in booked
    meeting = api.wait_for(meid, lambda m: m["state"] == "active" and _answered(m), timeout=20)
    assert _answered(meeting), meeting
    deadline = time.monotonic() + 10
    while not _speaker_events(api, meid) and time.monotonic() < deadline:
        time.sleep(0.3)
    talkers = _speaker_events(api, meid)
    assert talkers, "speaker events arrive once the booked meeting has started"
    # The party booked muted joined muted: never named as a talker.
    assert all(PHONES[1] not in phones for phones in talkers), talkers
    assert any(PHONES[0] in phones for phones in talkers), talkers
    assert all("speaking" in m for m in api.query(meid)["members"])
    time.sleep(1.0)
    assert api.post({"action": "destroyMeeting", "confid": meid}).code == "0"
    meeting = api.wait_for(meid, _finished, timeout=20)
    (recording,) = meeting["recordings"]
    samples = _decode(httpx.get(recording["url"], timeout=10).content, tmp_path)
    assert float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) > 300


def test_stop_meeting_prompt_silences_a_looping_prompt(
    served: tuple[Server, Api], tmp_path: Path
) -> None:
    _, api = served
    site = tmp_path / "site"
    site.mkdir()
    _tone_wav(site / "loop.wav", LOOP_TONE, 0.5)
    creator, other = PHONES[0], PHONES[1]
    with _site(site) as base:
        meid = api.create_meeting(
            record="1", beep="0", parties=[{"phone": creator}, {"phone": other}]
        )
        api.wait_for(meid, _answered)
        prompt = {"action": "playMeetingPrompt", "confid": meid, "url": f"{base}/loop.wav"}
        stop = {"action": "stopMeetingPrompt", "confid": meid}
        assert api.post({**prompt, "loop": "1"}).code == "0"
        played = time.monotonic()
        time.sleep(2.5)
        assert api.post(stop).code == "0"
        stopped = time.monotonic()
        time.sleep(2.5)
        ended = time.monotonic()
        # One member's prompt, stopped for that member; strangers and ended meetings refused.
        assert api.post({**prompt, "loop": "1", "phone": other}).code == "0"
        assert api.post({**stop, "phone": other}).code == "0"
        assert api.post({**stop, "phone": "13900000000"}).code == "-304"
        assert api.post({**stop, "phone": "12ab"}).code != "0"
        assert api.post({"action": "stopMeetingPrompt"}).code != "0"
        assert api.post({"action": "destroyMeeting", "confid": meid}).code == "0"
        assert api.post(stop).code != "0"
    meeting = api.wait_for(meid, _finished, timeout=20)
    samples = _decode(httpx.get(meeting["recordings"][0]["url"], timeout=10).content, tmp_path)
    # Where the loop is, found by its tone in half-second blocks (not by wall-clock times,
    # which a busy machine shifts): about as long as it played, and none of it at the end.
    block = 4000
    loud = []
    for start in range(0, len(samples) - block, block):
        levels = band_levels(
            samples[start : start + block].astype(np.float64), [LOOP_TONE, QUIET_BAND]
        )
        loud.append(levels[LOOP_TONE] - levels[QUIET_BAND] >= 20)
    looped = sum(loud) / 2
    assert stopped - played - 1.0 <= looped <= stopped - played + 1.0, (looped, loud)
    silent_since = int((ended - stopped - 0.8) * 2)  # blocks surely after the stop
    assert silent_since >= 2 and not any(loud[-silent_since:]), loud


def test_kicking_the_creator_ends_a_meeting_with_endoncreatorleave(
    served: tuple[Server, Api],
) -> None:
    _, api = served
    creator, others = PHONES[0], PHONES[1:]
    meid = api.create_meeting(
        creator=creator, endoncreatorleave="1", parties=[{"phone": p} for p in others]
    )
    api.wait_for(meid, _answered)
    kick = {"action": "kickMeetingMember", "confid": meid}
    assert api.post({**kick, "phone": others[0]}).code == "0"  # not the creator: goes on
    assert api.query(meid)["state"] == "active"
    assert api.post({**kick, "phone": creator}).code == "0"
    meeting = api.query(meid)
    assert meeting["state"] == "ended"
    states = {m["phone"]: m["stateDesc"] for m in meeting["members"]}
    assert states[others[1]] == "应答|会议结束", states
    assert states[others[0]] == states[creator] != "应答|会议结束", states

    # Without the switch, the meeting outlives its creator.
    meid = api.create_meeting(creator=creator, parties=[{"phone": others[0]}])
    api.wait_for(meid, _answered)
    assert api.post({**kick, "confid": meid, "phone": creator}).code == "0"
    assert api.query(meid)["state"] == "active"
    assert api.post({"action": "destroyMeeting", "confid": meid}).code == "0"


def test_prompt_urls_on_internal_addresses_are_refused_by_default(
    sqlite_db: str, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _tone_wav(site / "a.wav", 1000.0, 0.5)
    server = start_server(sqlite_db, tmp_path, {"TELEMEETING_RECORDINGS_DIRECTORY": str(tmp_path)})
    try:
        api = Api(server, server.new_tenant())
        meid = api.create_meeting(parties=[{"phone": PHONES[0]}])
        api.wait_for(meid, _answered)
        with _site(site) as base:
            prompt = {"action": "playMeetingPrompt", "confid": meid}
            for url in (f"{base}/a.wav", "http://10.0.0.1/a.wav", "http://[::1]/a.wav"):
                reply = api.post({**prompt, "url": url})
                assert reply.code == "-101", (url, reply.body)
        log = server.log_path.read_text(errors="replace")
        assert "resolves to an internal address" in log
    finally:
        server.stop()
