"""Voice-like audio for legs that have no phone behind them (the simulated carrier).

Each party gets its own fundamental and its own rhythm of talk spurts and pauses, so that a
recording, the N-1 mix and a voice activity detector see distinct talkers exactly as they would
on real calls. The signal is made once per voice (a 10 s loop, G.711-encoded) and then only
sliced, so a simulated leg costs the mixer no more than an RTP leg.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np
import numpy.typing as npt

from telemeeting.telephony.media import g711
from telemeeting.telephony.media.g711 import FRAME_SAMPLES

RATE = 8000
#: Distinct voices; parties beyond this share a voice but start at another point of its loop.
VOICES = 8
LOOP_SECONDS = 10.0
_LOOP_FRAMES = int(LOOP_SECONDS * RATE) // FRAME_SAMPLES


def voice_samples(voice: int) -> npt.NDArray[np.int16]:
    """The loop of voice `voice`: harmonics of its own pitch, syllables at ~4 Hz, pauses."""
    rng = np.random.default_rng(voice)
    count = _LOOP_FRAMES * FRAME_SAMPLES
    t = np.arange(count) / RATE
    pitch = 110.0 + 31.0 * voice
    vibrato = 1.0 + 0.02 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * pitch * np.cumsum(vibrato) / RATE
    signal = sum(np.sin(k * phase) / k for k in range(1, 7))
    syllables = 0.5 - 0.5 * np.cos(2 * np.pi * (3.5 + 0.3 * voice) * t)
    talking = np.zeros(count, dtype=bool)
    at = rng.uniform(0.0, 1.0)
    while at < LOOP_SECONDS:
        spurt = rng.uniform(1.2, 2.5)
        talking[int(at * RATE) : int(min(at + spurt, LOOP_SECONDS) * RATE)] = True
        at += spurt + rng.uniform(0.6, 1.5)
    samples = np.asarray(signal) * syllables * talking * 6000.0
    return np.clip(samples, -32768, 32767).astype(np.int16)


@functools.cache
def voice_loop(voice: int) -> bytes:
    """Voice `voice` encoded as PCMU, ready to slice into 20 ms payloads."""
    return g711.encode(g711.PCMU, voice_samples(voice % VOICES))


def voice_of(key: str) -> tuple[int, int]:
    """A party's voice and the frame of the loop it starts at, fixed by its leg id."""
    digest = zlib.crc32(key.encode())
    return digest % VOICES, (digest >> 8) % _LOOP_FRAMES


class SyntheticStream:
    """A `MemberStream` that talks a voice loop and keeps what it hears (for tests and demos)."""

    payload_type = g711.PCMU

    def __init__(self, key: str) -> None:
        voice, self._frame = voice_of(key)
        self.voice = voice
        self._loop = voice_loop(voice)
        self.heard_frames = 0
        self.last_heard: bytes | None = None

    def enter_room(self) -> None:
        """Nothing to reset: a simulated party has sent no early media."""

    def drain(self, limit: int = 8) -> None:
        """Nothing to read: the voice is generated."""

    def read_payload(self) -> tuple[int, bytes] | None:
        start = self._frame * FRAME_SAMPLES
        self._frame = (self._frame + 1) % _LOOP_FRAMES
        return g711.PCMU, self._loop[start : start + FRAME_SAMPLES]

    def write_payload(self, payload: bytes | None) -> None:
        self.heard_frames += 1
        self.last_heard = payload
