"""Carrying out the in-call media orders on a Conference, the same for SIP and the simulator.

Encoding a finished recording to MP3 takes real CPU (about 4 s per hour of audio), so it
runs in a worker thread: the 20 ms tick must never wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import numpy as np
import structlog

from telemeeting.telephony.media.conference import Conference
from telemeeting.telephony.media.recorder import Recorder, encode_mp3
from telemeeting.telephony.media.sounds import Player, Sound
from telemeeting.telephony.media.vad import SpeakerDetector
from telemeeting.telephony.orders import (
    ConfigureMeeting,
    HoldMember,
    MediaOrder,
    PlayPrompt,
    StartRecording,
    StopPrompt,
    StopRecording,
)

log = structlog.get_logger(__name__)


class MediaControl:
    def __init__(self, conference: Conference) -> None:
        self.conference = conference
        self._encodings: set[asyncio.Task[None]] = set()

    def apply(self, order: MediaOrder) -> None:
        room = order.meeting_id
        if isinstance(order, ConfigureMeeting):
            settings = self.conference.room_media(room)
            settings.beep = order.beep
            settings.creator = order.creator_leg
            settings.end_on_creator_leave = order.end_on_creator_leave
            if order.speaker_events and settings.speakers is None:
                settings.speakers = SpeakerDetector()
        elif isinstance(order, StartRecording):
            self.conference.start_recording(room, order.recording_id, Path(order.path))
        elif isinstance(order, StopRecording):
            media = self.conference.media.get(room)
            if media is not None and media.recording_id == order.recording_id:
                self._encode(self.conference.stop_recording(room))
        elif isinstance(order, HoldMember):
            self.conference.hold(room, order.leg_id, order.held)
        elif isinstance(order, PlayPrompt):
            self._play(order)
        elif isinstance(order, StopPrompt):
            self._stop_prompts(room, order.leg_id or None)

    def _play(self, order: PlayPrompt) -> None:
        """Load the prompt the service rendered (a few hundred KB at most) and play it."""
        try:
            samples = np.fromfile(order.path, dtype="<i2")
        except OSError:
            log.warning("prompt.missing", path=order.path)
            return
        player = Player(samples.astype(np.int16), loop=order.loop)
        self.conference.play(order.meeting_id, Sound(player, only=order.leg_id or None))

    def _stop_prompts(self, room: str, only: str | None) -> None:
        """Silence the prompts played to `only`, or (None) every prompt of the room. Beeps,
        which always exclude the member they are about, play on."""
        media = self.conference.media.get(room)
        if media is None:
            return
        media.sounds[:] = [
            s for s in media.sounds
            if s.exclude is not None or (only is not None and s.only != only)
        ]  # fmt: skip

    def end_meeting(self, room: str) -> None:
        self._encode(self.conference.end_room(room))

    def ends_meeting(self, room: str, leg_id: str) -> bool:
        """Does this leg's end end the meeting (`endoncreatorleave` and it is the creator)?"""
        media = self.conference.media.get(room)
        return bool(media and media.end_on_creator_leave and media.creator == leg_id)

    def _encode(self, recorder: Recorder | None) -> None:
        if recorder is None:
            return
        task = asyncio.create_task(self._to_mp3(recorder.path), name=f"mp3-{recorder.path.stem}")
        self._encodings.add(task)
        task.add_done_callback(self._encodings.discard)

    @staticmethod
    async def _to_mp3(wav: Path) -> None:
        try:
            finished = await asyncio.to_thread(encode_mp3, wav)
            log.info("recording.encoded", path=str(wav), seconds=finished.seconds)
        except Exception:  # the WAV stays: `telemeeting recordings purge` encodes it later
            log.exception("recording.encode_failed", path=str(wav))

    async def close(self) -> None:
        """Stop every recording and wait for the MP3s (a node shutting down keeps them)."""
        for room in list(self.conference.media):
            self.end_meeting(room)
        if self._encodings:
            with contextlib.suppress(Exception):
                await asyncio.wait(self._encodings, timeout=30.0)
