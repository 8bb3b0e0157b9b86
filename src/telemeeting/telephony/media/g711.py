"""G.711 µ-law and A-law with numpy lookup tables.

`audioop` is deprecated in 3.11 and gone in 3.13, so we build the tables ourselves. The encoders
follow audioop's integer arithmetic (µ-law on 14 bits, A-law on 13 bits), so results are
bit-exact with it: decoding is one 256-entry gather, encoding one 65,536-entry gather.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

PCMU = 0
PCMA = 8

#: One 20 ms frame at 8 kHz.
FRAME_SAMPLES = 160

_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def _ulaw_decode_table() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = ((u & 0x0F) << 3) + 0x84
    t <<= (u & 0x70) >> 4
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _alaw_decode_table() -> npt.NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    x = np.arange(65536, dtype=np.int32).astype(np.uint16).view(np.int16).astype(np.int32) >> 2
    mask = np.where(x < 0, 0x7F, 0xFF)
    x = np.minimum(np.abs(x), 8159) + 33
    seg = np.searchsorted(_ULAW_SEG_END, x)
    uval = (seg << 4) | ((x >> (np.minimum(seg, 7) + 1)) & 0x0F)
    uval = np.where(seg >= 8, 0x7F, uval)
    return (uval ^ mask).astype(np.uint8)


def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    x = np.arange(65536, dtype=np.int32).astype(np.uint16).view(np.int16).astype(np.int32) >> 3
    mask = np.where(x >= 0, 0xD5, 0x55)
    x = np.where(x >= 0, x, -x - 1)
    seg = np.searchsorted(_ALAW_SEG_END, x)
    low = np.where(seg < 2, x >> 1, x >> np.minimum(seg, 7)) & 0x0F
    aval = np.where(seg >= 8, 0x7F, (seg << 4) | low)
    return (aval ^ mask).astype(np.uint8)


ULAW_DECODE = _ulaw_decode_table()
ALAW_DECODE = _alaw_decode_table()
ULAW_ENCODE = _ulaw_encode_table()
ALAW_ENCODE = _alaw_encode_table()

_DECODE = {PCMU: ULAW_DECODE, PCMA: ALAW_DECODE}
_ENCODE = {PCMU: ULAW_ENCODE, PCMA: ALAW_ENCODE}

#: The encoded byte for digital silence, per payload type.
SILENCE_BYTE = {PCMU: int(ULAW_ENCODE[0]), PCMA: int(ALAW_ENCODE[0])}


# Both laws in one table, so a tick can decode/encode every member in one gather whatever
# mix of PCMU and PCMA the room has: A-law rows are offset by 256 (decode) or 65,536 (encode).
Rows = npt.NDArray[np.bool_]
_DECODE_BOTH = np.concatenate([ULAW_DECODE, ALAW_DECODE])
_ENCODE_BOTH = np.concatenate([ULAW_ENCODE, ALAW_ENCODE])


def decode_frames(codes: npt.NDArray[np.uint8], alaw: Rows) -> npt.NDArray[np.int16]:
    """(n, k) encoded bytes to (n, k) samples; row i is A-law where alaw[i], else µ-law.
    `np.take` rather than fancy indexing: the same gather in about half the time (it skips
    the general indexing machinery), which counts at hundreds of rows a tick."""
    if not alaw.any():
        return np.take(ULAW_DECODE, codes)
    return np.take(_DECODE_BOTH, codes.astype(np.intp) + (alaw[:, None] << 8))


def encode_frames(samples: npt.NDArray[np.int16], alaw: Rows) -> npt.NDArray[np.uint8]:
    """(n, k) samples to (n, k) encoded bytes; row i is A-law where alaw[i], else µ-law."""
    index = samples.astype(np.int16, copy=False).view(np.uint16)
    if not alaw.any():
        return np.take(ULAW_ENCODE, index)
    return np.take(_ENCODE_BOTH, index.astype(np.intp) + (alaw[:, None].astype(np.intp) << 16))


def is_g711(payload_type: int) -> bool:
    return payload_type in _DECODE


def decode(payload_type: int, payload: bytes) -> npt.NDArray[np.int16]:
    """Encoded bytes to 16-bit linear samples."""
    return _DECODE[payload_type][np.frombuffer(payload, dtype=np.uint8)]


def encode(payload_type: int, samples: npt.NDArray[np.int16]) -> bytes:
    """16-bit linear samples to encoded bytes."""
    return _ENCODE[payload_type][samples.astype(np.int16, copy=False).view(np.uint16)].tobytes()


def silence(payload_type: int, samples: int = FRAME_SAMPLES) -> bytes:
    return bytes([SILENCE_BYTE[payload_type]]) * samples
