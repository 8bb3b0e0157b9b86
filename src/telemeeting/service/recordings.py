"""Meeting recordings: starting and stopping them, their download links, and what they are.

A recording is a row (store/recordings.py) plus files named after its id in `[recordings]
directory`: `{id}.wav` while the mixer writes it, then `{id}.mp3` and `{id}.json` (seconds and
bytes). Download links are signed, not stored: `GET /recordings/{id}.mp3?expires=E&sig=S` with
S = hex HMAC-SHA256(secret, "{id}.{E}"), so any API process can check one without the database
knowing about links, and a link stops working at E.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telemeeting.config import Settings
from telemeeting.domain.model import Meeting
from telemeeting.service.pushes import Push
from telemeeting.store.recordings import RecordingRepository, StoredRecording
from telemeeting.store.unit_of_work import Database, UnitOfWork
from telemeeting.telephony.media.recorder import encode_mp3, finished
from telemeeting.telephony.orders import StartRecording
from telemeeting.wire import callbacks
from telemeeting.wire.cdr import NO_TAPES, TAPES_SEPARATOR
from telemeeting.wire.times import format_wire_time

#: Recording ids: 32 hex digits (what a download path must be).
ID_HEX = 32


@dataclass(frozen=True)
class RecordingLinks:
    """How download links are made and checked."""

    base_url: str
    secret: bytes
    url_seconds: float
    retention_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RecordingLinks:
        config = settings.recordings
        base = config.public_url or f"http://{settings.server.host}:{settings.server.port}"
        secret = config.secret or hashlib.sha256(
            b"telemeeting-recordings:" + settings.database.url.encode()
        ).hexdigest()
        retention = config.retention_days * 86400
        return cls(base.rstrip("/"), secret.encode(), config.url_seconds, retention)

    def signature(self, recording_id: str, expires: int) -> str:
        message = f"{recording_id}.{expires}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def url(self, recording_id: str, expires: float) -> str:
        when = int(expires)
        sig = self.signature(recording_id, when)
        return f"{self.base_url}/recordings/{recording_id}.mp3?expires={when}&sig={sig}"

    def valid(self, recording_id: str, expires: str, sig: str, now: float) -> bool:
        """A well-formed, unexpired link signed with our secret."""
        if not expires.isdigit() or len(expires) > 12 or int(expires) < now:
            return False
        expected = self.signature(recording_id, int(expires))
        return hmac.compare_digest(expected, sig)


def wav_path(settings: Settings, recording_id: str) -> Path:
    return Path(settings.recordings.directory).resolve() / f"{recording_id}.wav"


def new_recording(
    settings: Settings, meeting: Meeting, env: str, now: float
) -> tuple[StoredRecording, StartRecording]:
    """A recording row for `meeting` starting now, and the order that starts the mixer on it."""
    recording_id = secrets.token_hex(ID_HEX // 2)
    path = str(wav_path(settings, recording_id))
    row = StoredRecording(recording_id, meeting.id, meeting.app_id, now, None, path)
    return row, StartRecording(meeting.id, recording_id, path, env)


def running(recordings: Sequence[StoredRecording]) -> StoredRecording | None:
    return next((r for r in recordings if r.stopped_at is None), None)


def abandoned(recording: StoredRecording, now: float) -> bool:
    """A running recording nobody writes any more: its media node died (the meeting went to
    another node, which does not record it). It may be stopped and a new one started."""
    if now - recording.started_at < ABANDONED_SECONDS:
        return False  # maybe not started on its node yet
    wav = Path(recording.path)
    try:
        return now - wav.stat().st_mtime > ABANDONED_SECONDS
    except OSError:
        return finished(wav) is None


def end_of(recording: StoredRecording, meeting: Meeting) -> float | None:
    """When it stopped: by stopMeetingRecording, or with the meeting; None while it runs."""
    if recording.stopped_at is not None:
        return recording.stopped_at
    return meeting.ended_at


def covering(
    recordings: Sequence[StoredRecording], meeting: Meeting, start: float, end: float
) -> list[StoredRecording]:
    """The recordings that ran during [start, end]."""
    found = []
    for recording in recordings:
        stop = end_of(recording, meeting)
        if recording.started_at <= end and (stop is None or stop >= start):
            found.append(recording)
    return found


def describe(
    recordings: Sequence[StoredRecording],
    meeting: Meeting,
    links: RecordingLinks,
    zone: Any,
    now: float,
) -> list[dict[str, Any]]:
    """queryMeeting's `recordings` (**extension**): url, start, end, seconds, bytes; `seconds`
    and `bytes` are 0 until the MP3 is written."""
    views = []
    for recording in recordings:
        done = finished(Path(recording.path))
        views.append(
            {
                "url": links.url(recording.id, now + links.url_seconds),
                "start": format_wire_time(recording.started_at, zone),
                "end": format_wire_time(end_of(recording, meeting), zone),
                "seconds": round(done.seconds) if done else 0,
                "bytes": done.bytes if done else 0,
            }
        )
    return views


async def add_tapes(
    uow: UnitOfWork,
    meeting: Meeting,
    pushes: Sequence[Push],
    links: RecordingLinks,
    now: float | None = None,
) -> None:
    """Fill each answered leg's CDR `tapesurl` with the link(s) of the recordings covering the
    call (valid for the retention period). Costs one indexed read, and only for a change that
    ends an answered leg."""
    cdrs = []
    for push in pushes:
        leg = meeting.leg(push.leg_id) if push.kind == callbacks.CDR and push.leg_id else None
        if leg is not None and leg.answered_at is not None and leg.ended_at is not None:
            cdrs.append((push, leg.answered_at, leg.ended_at))
    if not cdrs:
        return
    recordings = await RecordingRepository(uow.connection).for_meeting(meeting.id)
    if not recordings:
        return
    expires = (time.time() if now is None else now) + links.retention_seconds
    for push, start, end in cdrs:
        found = covering(recordings, meeting, start, end)
        tapes = TAPES_SEPARATOR.join(links.url(r.id, expires) for r in found) or NO_TAPES
        push.body[callbacks.CDR_ENTRIES][0]["tapesurl"] = tapes


#: A WAV nobody has written to for this long is not being recorded (the mixer flushes every
#: second): it was left by a crash, and purge encodes it.
ABANDONED_SECONDS = 60.0


@dataclass(frozen=True)
class PurgeResult:
    deleted: int
    encoded: int


def _remove_files(wav: Path) -> None:
    for suffix in (".wav", ".mp3", ".json", ".mp3.part"):
        wav.with_suffix(suffix).unlink(missing_ok=True)


async def purge(db: Database, settings: Settings, now: float | None = None) -> PurgeResult:
    """Apply `[recordings] retention_days` (rows and files of recordings started before it),
    then encode to MP3 what a crashed media process left as a WAV."""
    now = time.time() if now is None else now
    before = now - settings.recordings.retention_days * 86400
    async with db.unit_of_work() as uow:
        repository = RecordingRepository(uow.connection)
        expired = await repository.started_before(before)
        for recording in expired:
            _remove_files(Path(recording.path))
            await repository.delete(recording.id)
    encoded = 0
    directory = Path(settings.recordings.directory)
    for prompt in sorted((directory / "prompts").glob("*.pcm")):  # rendered again when needed
        with contextlib.suppress(OSError):
            if prompt.stat().st_mtime < before:
                prompt.unlink()
    if directory.is_dir():
        for wav in sorted(directory.glob("*.wav")):
            try:
                idle = now - wav.stat().st_mtime
            except OSError:
                continue
            if idle > ABANDONED_SECONDS and finished(wav) is None:
                await asyncio.to_thread(encode_mp3, wav)
                encoded += 1
    return PurgeResult(deleted=len(expired), encoded=encoded)
