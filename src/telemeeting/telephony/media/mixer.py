"""The N-1 mix: each member hears the sum of everyone else, never itself.

Summing in int32 and subtracting each member's own contribution costs one pass whatever the room
size; the result is hard-clipped to 16 bits (a sum of loud talkers would otherwise wrap around).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from telemeeting.telephony.media.g711 import FRAME_SAMPLES

Frames = npt.NDArray[np.int16]


def mix_minus(frames: Frames, speaking: npt.NDArray[np.bool_]) -> Frames:
    """frames: (n, 160) int16, what each member said; speaking: (n,) bool, whose voice counts
    (False for muted members and for silence). Returns (n, 160) int16, what each member hears."""
    heard = frames.astype(np.int32) * speaking[:, None]
    out = heard.sum(axis=0, dtype=np.int32)[None, :] - heard
    np.clip(out, -32768, 32767, out=out)
    return out.astype(np.int16)


def silence_frames(n: int) -> Frames:
    return np.zeros((n, FRAME_SAMPLES), dtype=np.int16)
