"""Sounds the mixer plays into a room or to one member: beeps, prompts, music on hold.

A `Player` hands out one 20 ms frame per tick from 8 kHz int16 samples (the last frame padded
with silence), once or in a loop; a `Sound` says who hears it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from telemeeting.telephony.media.g711 import FRAME_SAMPLES

RATE = 8000
Samples = npt.NDArray[np.int16]


def tone(frequencies: list[float], seconds: float, level: float = 0.25) -> Samples:
    """Consecutive sine tones of equal length with 5 ms fades (no clicks)."""
    each = int(seconds * RATE / len(frequencies))
    t = np.arange(each) / RATE
    ramp = min(40, each // 2)
    envelope = np.ones(each)
    envelope[:ramp] = np.linspace(0.0, 1.0, ramp)
    envelope[-ramp:] = np.linspace(1.0, 0.0, ramp)
    parts = [np.sin(2 * np.pi * f * t) * envelope for f in frequencies]
    return (np.concatenate(parts) * level * 32767).astype(np.int16)


@functools.cache
def join_beep() -> Samples:
    """A rising two-note beep: someone joined."""
    return tone([800.0, 1200.0], 0.3)


@functools.cache
def leave_beep() -> Samples:
    """A falling two-note beep: someone left."""
    return tone([1200.0, 800.0], 0.3)


#: Music on hold: a slow arpeggio over four chords, made here (no licence to worry about).
_HOLD_CHORDS = ([261.63, 329.63, 392.0], [220.0, 261.63, 329.63], [174.61, 220.0, 261.63],
                [196.0, 246.94, 293.66])  # fmt: skip
HOLD_NOTE_SECONDS = 0.25


@functools.cache
def hold_music() -> Samples:
    """An 8-second loop of soft plucked notes (C, Am, F, G), level well below speech."""
    note = int(HOLD_NOTE_SECONDS * RATE)
    t = np.arange(note) / RATE
    decay = np.exp(-t * 6.0)
    notes = []
    for chord in _HOLD_CHORDS:
        for _ in range(2):
            for frequency in (*chord, chord[1] * 2):
                wave = np.sin(2 * np.pi * frequency * t) + 0.3 * np.sin(4 * np.pi * frequency * t)
                notes.append(wave * decay)
    return (np.concatenate(notes) * 0.12 * 32767).astype(np.int16)


class Player:
    def __init__(self, samples: Samples, loop: bool = False) -> None:
        padding = (-len(samples)) % FRAME_SAMPLES
        if padding or not len(samples):
            samples = np.concatenate([samples, np.zeros(padding or FRAME_SAMPLES, np.int16)])
        self._frames = samples.reshape(-1, FRAME_SAMPLES)
        self._next = 0
        self.loop = loop

    def next_frame(self) -> Samples | None:
        """This tick's frame, or None once a sound that does not loop is over."""
        if self._next >= len(self._frames):
            if not self.loop:
                return None
            self._next = 0
        frame = self._frames[self._next]
        self._next += 1
        return frame


@dataclass(eq=False)
class Sound:
    """A sound in a room: heard by every joined member but `exclude`, or by `only` alone.
    Sounds for everyone (`only` None) are part of the room's recording."""

    player: Player
    exclude: str | None = None
    only: str | None = None

    def heard_by(self, key: str) -> bool:
        if self.only is not None:
            return key == self.only
        return key != self.exclude
