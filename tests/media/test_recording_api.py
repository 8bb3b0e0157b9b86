"""Recording through the HTTP API on the simulated carrier: a real server process, its sandbox
parties talking synthetic voices, the MP3 fetched over HTTP and decoded by mpg123."""

from __future__ import annotations

import shutil
import subprocess
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.servers import Api, Server, start_server

pytestmark = pytest.mark.timeout(120)

PHONES = ["13800000001", "13800000002", "13800000003"]


@pytest.fixture
def served(fresh_db: str, tmp_path: Path) -> Iterator[tuple[Server, Api, Path]]:
    """A server of its own on SQLite and on PostgreSQL (recordings and speakers are tables)."""
    directory = tmp_path / "recordings"
    server = start_server(fresh_db, tmp_path, {"TELEMEETING_RECORDINGS_DIRECTORY": str(directory)})
    try:
        yield server, Api(server, server.new_tenant()), directory
    finally:
        server.stop()


def _answered(meeting: dict[str, Any]) -> bool:
    return all(m["state"] == "answer" for m in meeting["members"])


def _finished(meeting: dict[str, Any]) -> bool:
    return bool(meeting.get("recordings")) and all(r["bytes"] > 0 for r in meeting["recordings"])


def _decode(mp3: bytes, tmp_path: Path) -> np.ndarray:
    mpg123 = shutil.which("mpg123")
    if mpg123 is None:
        pytest.skip("mpg123 (Debian) decodes the recording")
    source, out = tmp_path / "got.mp3", tmp_path / "got.wav"
    source.write_bytes(mp3)
    subprocess.run([mpg123, "-q", "-w", str(out), str(source)], check=True)
    with wave.open(str(out)) as reader:
        assert reader.getframerate() == 8000
        return np.frombuffer(reader.readframes(reader.getnframes()), np.int16)


def test_a_recorded_meeting_gives_a_signed_mp3_and_cdr_links(
    served: tuple[Server, Api, Path], tmp_path: Path
) -> None:
    server, api, directory = served
    meid = api.create_meeting(record="1", parties=[{"phone": p} for p in PHONES])
    api.wait_for(meid, _answered)
    started = time.monotonic()
    time.sleep(2.5)
    assert api.post({"action": "destroyMeeting", "confid": meid}).code == "0"
    length = time.monotonic() - started
    meeting = api.wait_for(meid, _finished, timeout=20)
    (recording,) = meeting["recordings"]
    assert recording["start"] and recording["end"]
    assert abs(recording["seconds"] - length) <= 2  # from create (ringing included) to end
    url = recording["url"]
    assert url.startswith(server.production_url + "/recordings/")

    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/mpeg"
    assert len(response.content) == recording["bytes"]
    samples = _decode(response.content, tmp_path)
    assert abs(len(samples) / 8000 - recording["seconds"]) <= 1
    level = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    assert level > 300, "the parties' voices are in the recording"

    ranged = httpx.get(url, headers={"Range": "bytes=0-99"}, timeout=10)
    assert ranged.status_code == 206 and ranged.content == response.content[:100]

    # Each answered leg's CDR links to the recording.
    events = api.post(
        {"action": "queryMeetingEvents", "confid": meid}, func_url="MeetingQuery.wx"
    ).body["events"]
    cdrs = [e["body"]["cdr"][0] for e in events if e["type"] == "Call"]
    assert len(cdrs) == 3
    for cdr in cdrs:
        link = cdr["tapesurl"]
        assert link.split("?")[0] == url.split("?")[0]
        assert httpx.get(link, timeout=10).status_code == 200

    # The link is the credential.
    base, query = url.split("?")
    assert httpx.get(base, timeout=10).status_code == 403
    forged = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
    assert httpx.get(forged, timeout=10).status_code == 403
    expired = query.replace("expires=", "expires=1")  # a different (later) expiry: bad sig
    assert httpx.get(f"{base}?{expired}", timeout=10).status_code == 403
    other = base.replace(base[-36:-4], "0" * 32)
    assert httpx.get(f"{other}?{query}", timeout=10).status_code == 403  # signed for another
    assert httpx.get(server.production_url + "/recordings/x.mp3", timeout=10).status_code == 404
    assert list(directory.glob("*.wav")) == []


def test_start_and_stop_recording_actions(served: tuple[Server, Api, Path]) -> None:
    _, api, _ = served
    meid = api.create_meeting(parties=[{"phone": PHONES[0]}])
    api.wait_for(meid, _answered)
    assert "recordings" not in api.query(meid)
    stop = {"action": "stopMeetingRecording", "confid": meid}
    start = {"action": "startMeetingRecording", "confid": meid}
    assert api.post(stop).code == "-101"
    assert api.post(start).code == "0"
    assert api.post(start).code == "-101"
    time.sleep(1.5)
    assert api.post(stop).code == "0"
    assert api.post(start).code == "0"  # a second recording of the same meeting
    time.sleep(1.0)
    assert api.post(stop).code == "0"
    meeting = api.wait_for(meid, _finished, timeout=20)
    first, second = meeting["recordings"]
    assert 1 <= first["seconds"] <= 3 and 0 <= second["seconds"] <= 2
    assert api.post({"action": "startMeetingRecording", "confid": "nope"}).code != "0"


BAD = [
    {"record": "2"},
    {"record": "yes"},
    {"beep": "4"},
    {"beep": "1\n"},
    {"beep": [1]},
    {"endoncreatorleave": "1"},  # needs a creator
    {"parties": [{"phone": "13800000001", "muted": "true"}]},
    {"record": "1", "beep": "5", "bookmeeting": "1", "booktime": "2099-01-01 10:00:00"},
]


def test_bad_media_parameters_are_refused(served: tuple[Server, Api, Path]) -> None:
    _, api, _ = served
    for params in BAD:
        reply = api.post({"action": "createMeeting", **params})
        assert reply.code == "-101", (params, reply.body)


def test_member_media_controls_on_the_simulated_carrier(served: tuple[Server, Api, Path]) -> None:
    _, api, _ = served
    creator, muted, other = PHONES
    meid = api.create_meeting(
        creator=creator,
        record="1",
        parties=[{"phone": muted, "muted": "1"}, {"phone": other}],
    )
    flags = {m["phone"]: m["muted"] for m in api.query(meid)["members"]}
    assert flags == {creator: False, muted: True, other: False}  # at once, while ringing
    api.wait_for(meid, _answered)
    assert api.post({"action": "muteAllMeetingMembers", "confid": meid}).code == "0"
    flags = {m["phone"]: m["muted"] for m in api.query(meid)["members"]}
    assert flags == {creator: False, muted: True, other: True}
    assert api.post({"action": "unmuteAllMeetingMembers", "confid": meid}).code == "0"
    assert not any(m["muted"] for m in api.query(meid)["members"])
    hold = {"action": "holdMeetingMember", "confid": meid}
    assert api.post({**hold, "phone": other}).code == "0"
    assert api.post({**hold, "phone": "13900000000"}).code == "-304"
    held = {m["phone"]: m["held"] for m in api.query(meid)["members"]}
    assert held == {creator: False, muted: False, other: True}
    unhold = {"action": "unholdMeetingMember", "confid": meid, "phone": other}
    assert api.post(unhold).code == "0"
    assert not any(m["held"] for m in api.query(meid)["members"])
    prompt = {"action": "playMeetingPrompt", "confid": meid}
    if shutil.which("espeak-ng"):
        assert api.post({**prompt, "text": "welcome"}).code == "0"
        assert api.post({**prompt, "text": "欢迎", "phone": other, "loop": "1"}).code == "0"
    assert api.post({**prompt, "text": "x", "phone": "13900000000"}).code == "-304"
    assert api.post({**prompt}).code == "-101"
    assert api.post({**prompt, "url": "ftp://example.invalid/a.wav"}).code == "-101"
    assert api.post({**prompt, "url": "http://127.0.0.1:9/a.wav"}).code == "-101"
    assert api.post({**prompt, "text": "a\u0007b"}).code == "-101"
    time.sleep(1.0)
    assert api.post({"action": "destroyMeeting", "confid": meid}).code == "0"
    meeting = api.wait_for(meid, _finished, timeout=20)
    assert meeting["recordings"][0]["seconds"] >= 1
