"""What a room has beyond its members' voices: its settings, its recorder, its sounds.

Only rooms that use one of these features have a `RoomMedia`, so plain rooms cost the mixer
nothing extra.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from telemeeting.telephony.media.recorder import Recorder
from telemeeting.telephony.media.sounds import Sound
from telemeeting.telephony.media.vad import SpeakerDetector

#: `beep` bits: a beep when a member joins, when a member leaves.
BEEP_ON_JOIN = 1
BEEP_ON_LEAVE = 2


@dataclass(eq=False)
class RoomMedia:
    beep: int = 0
    #: The creator's leg: never muted by mute-all; with `end_on_creator_leave`, its end ends
    #: the meeting.
    creator: str = ""
    end_on_creator_leave: bool = False
    recorder: Recorder | None = None
    recording_id: str = ""
    sounds: list[Sound] = field(default_factory=list)
    #: `speakerevents`: who is talking, reported as it changes.
    speakers: SpeakerDetector | None = None
    #: Members on hold (they hear music instead of the room).
    held: set[str] = field(default_factory=set)

    @property
    def busy(self) -> bool:
        """Anything for the tick to do: a room that only has settings (beeps to come) costs
        nothing per tick."""
        return bool(self.sounds or self.held) or (
            self.recorder is not None or self.speakers is not None
        )

    @property
    def needs_mixing(self) -> bool:
        """Something observable comes of mixing this room even without real phones."""
        return self.recorder is not None or self.speakers is not None
