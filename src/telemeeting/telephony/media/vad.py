"""Who is talking: an energy detector with attack and hangover, per member of one room.

A member starts talking after `attack` consecutive frames above `threshold` (RMS of 16-bit
samples; a cough or a click does not count) and stops `hangover` frames after their last loud
frame (the gaps between words do not count). The set of talkers is reported when it changes, but
at most once per `interval` frames: a change inside that window is reported, as it then stands,
when the window ends. Counting in 20 ms frames keeps it deterministic and free of clocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: About -38 dBFS: speech and tones are far above it, line noise and silence below.
THRESHOLD = 400.0
ATTACK_FRAMES = 3
HANGOVER_FRAMES = 20
#: At most 2 reports per second per meeting.
INTERVAL_FRAMES = 25


@dataclass
class _Voice:
    loud_run: int = 0
    quiet_for: int = 0
    talking: bool = False


@dataclass
class SpeakerDetector:
    threshold: float = THRESHOLD
    attack: int = ATTACK_FRAMES
    hangover: int = HANGOVER_FRAMES
    interval: int = INTERVAL_FRAMES
    _voices: dict[str, _Voice] = field(default_factory=dict)
    _reported: frozenset[str] = frozenset()
    _since_report: int = INTERVAL_FRAMES

    def update(self, levels: Mapping[str, float]) -> tuple[str, ...] | None:
        """One frame's level for each member present (absent: left); the talkers, sorted, when
        they are to be reported now, else None."""
        for key in [k for k in self._voices if k not in levels]:
            del self._voices[key]
        for key, level in levels.items():
            voice = self._voices.setdefault(key, _Voice())
            if level >= self.threshold:
                voice.loud_run += 1
                voice.quiet_for = 0
                if voice.loud_run >= self.attack:
                    voice.talking = True
            else:
                voice.loud_run = 0
                voice.quiet_for += 1
                if voice.quiet_for > self.hangover:
                    voice.talking = False
        self._since_report += 1
        talking = frozenset(k for k, v in self._voices.items() if v.talking)
        if talking == self._reported or self._since_report < self.interval:
            return None
        self._reported = talking
        self._since_report = 0
        return tuple(sorted(talking))

    @property
    def talking(self) -> frozenset[str]:
        """The talkers as last reported."""
        return self._reported
