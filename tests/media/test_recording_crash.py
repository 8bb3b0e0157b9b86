"""A recording survives its process: the server is killed (SIGKILL) mid-recording, the WAV it was
writing is a valid file holding what was recorded, and `telemeeting recordings purge` encodes it
to the MP3 the download serves; purge also applies the retention."""

from __future__ import annotations

import json
import os
import signal
import time
import wave
from pathlib import Path

import pytest

from telemeeting.config import load_settings
from telemeeting.service.recordings import RecordingLinks
from tests.servers import Api, run_cli, start_server

pytestmark = pytest.mark.timeout(120)


def test_a_killed_recording_stays_playable_and_purge_encodes_it(tmp_path: Path) -> None:
    directory = tmp_path / "recordings"
    db = f"sqlite+aiosqlite:///{tmp_path / 'tm.db'}"
    env = {"TELEMEETING_RECORDINGS_DIRECTORY": str(directory)}
    server = start_server(db, tmp_path, env)
    try:
        api = Api(server, server.new_tenant())
        meid = api.create_meeting(record="1", parties=[{"phone": "13800000001"}])
        api.wait_for(meid, lambda m: m["members"][0]["state"] == "answer")
        time.sleep(3.0)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
    finally:
        server.stop()
    (wav,) = directory.glob("*.wav")
    with wave.open(str(wav)) as reader:  # the header tells the truth (to within a second)
        seconds = reader.getnframes() / reader.getframerate()
    assert 2.0 <= seconds <= 4.5

    long_ago = time.time() - 3600
    os.utime(wav, (long_ago, long_ago))  # nobody writes it any more
    purged = json.loads(
        run_cli("recordings", "purge", "--json", db=db, env=env, in_process=False).stdout
    )
    assert purged == {"deleted": 0, "encoded": 1}
    assert not wav.exists() and wav.with_suffix(".mp3").stat().st_size > 0
    sidecar = json.loads(wav.with_suffix(".json").read_text())
    assert abs(sidecar["seconds"] - seconds) < 0.1

    # Past the retention, purge deletes the recording, row and files.
    purged = json.loads(
        run_cli(
            "recordings",
            "purge",
            "--json",
            db=db,
            env={**env, "TELEMEETING_RECORDINGS_RETENTION_DAYS": "1e-6"},
            in_process=False,
        ).stdout
    )
    assert purged == {"deleted": 1, "encoded": 0}
    assert list(directory.glob("*.*")) == []


def test_links_are_signed_per_recording_and_expire() -> None:
    links = RecordingLinks.from_settings(load_settings())
    url = links.url("a" * 32, 2000)
    sig = url.rsplit("sig=", 1)[1]
    assert "expires=2000" in url
    assert links.valid("a" * 32, "2000", sig, now=1999)
    assert not links.valid("a" * 32, "2000", sig, now=2001)  # expired
    assert not links.valid("b" * 32, "2000", sig, now=1999)  # another recording
    assert not links.valid("a" * 32, "2001", sig, now=1999)  # another expiry
    assert not links.valid("a" * 32, "-1", sig, now=0)
    other = RecordingLinks.from_settings(load_settings(recordings={"secret": "s3cret"}))
    assert not other.valid("a" * 32, "2000", sig, now=1999)  # another secret


def test_a_recording_nobody_writes_any_more_is_abandoned(tmp_path: Path) -> None:
    from telemeeting.service.recordings import abandoned
    from telemeeting.store.recordings import StoredRecording

    wav = tmp_path / "r.wav"
    now = time.time()
    young = StoredRecording("r", "m", "a", now - 5, None, str(wav))
    old = StoredRecording("r", "m", "a", now - 600, None, str(wav))
    assert not abandoned(young, now)  # its node may not have started it yet
    assert abandoned(old, now)  # no file at all
    wav.write_bytes(b"RIFF")
    assert not abandoned(old, now)  # written just now
    os.utime(wav, (now - 120, now - 120))
    assert abandoned(old, now)
