"""The N-1 mix: each member hears the sum of everyone else, never itself.

Summing in int32 and subtracting each member's own contribution costs one pass whatever the room
size; the result is hard-clipped to 16 bits (a sum of loud talkers would otherwise wrap around).
All rooms of a process are mixed in one vectorised pass: numpy's per-call overhead, not the
arithmetic, is what costs at 160 samples a frame.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from telemeeting.telephony.media.g711 import FRAME_SAMPLES

Frames = npt.NDArray[np.int16]


def mix_minus(frames: Frames, speaking: npt.NDArray[np.bool_]) -> Frames:
    """One room. frames: (n, 160) int16, what each member said; speaking: (n,) bool, whose voice
    counts (False for muted members and for silence). Returns what each member hears."""
    count = len(frames)
    return mix_rooms(frames, speaking, np.zeros(1, np.intp), np.zeros(count, np.intp))


def mix_rooms(
    frames: Frames,
    speaking: npt.NDArray[np.bool_],
    starts: npt.NDArray[np.intp],
    room_of: npt.NDArray[np.intp],
) -> Frames:
    """Many rooms at once: members of a room are contiguous rows; `starts` holds each room's
    first row (rooms are never empty) and `room_of` each row's room."""
    return mix_rooms_and_sums(frames, speaking, starts, room_of)[0]


def mix_rooms_and_sums(
    frames: Frames,
    speaking: npt.NDArray[np.bool_],
    starts: npt.NDArray[np.intp],
    room_of: npt.NDArray[np.intp],
    extra: Mapping[int, npt.NDArray[np.int32]] | None = None,
) -> tuple[Frames, npt.NDArray[np.int32]]:
    """`mix_rooms`, and each room's local mix (everyone here who speaks, unclipped int32): what
    a recording of the room holds and what a cascade link sends, at no extra cost (the sums are
    made anyway). `extra` maps a room's index to a frame (160 samples, int32) that every member
    of that room hears on top of the others (the audio cascade links bring from other nodes);
    it is not in the sums returned, so a node never sends a peer's audio back out
    (cascade.py). Only those rooms' rows are touched."""
    heard = frames.astype(np.int32)
    heard[~speaking] = 0
    sums = np.add.reduceat(heard, starts, axis=0)
    out = sums[room_of]
    out -= heard
    if extra:
        for index, frame in extra.items():
            first = int(starts[index])
            last = int(starts[index + 1]) if index + 1 < len(starts) else len(out)
            out[first:last] += frame
    np.clip(out, -32768, 32767, out=out)
    return out.astype(np.int16), sums


def silence_frames(n: int) -> Frames:
    return np.zeros((n, FRAME_SAMPLES), dtype=np.int16)
