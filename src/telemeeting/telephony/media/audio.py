"""Audio files for prompts: any PCM WAV read tolerantly, mixed to mono, resampled to 8 kHz.

The reader trusts the file over its header (espeak-ng writing to a pipe leaves the sizes at
0x7ffff000), accepts 8-, 16-, 24- and 32-bit integer PCM and WAVE_FORMAT_EXTENSIBLE holding PCM,
and refuses anything else with a clear reason. Resampling is a windowed-sinc low-pass (against
aliasing when the source is faster) followed by linear interpolation: plenty for speech and
music at telephone quality, and pure numpy.
"""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt

RATE = 8000
_PCM = 1
_EXTENSIBLE = 0xFFFE
_TAPS = 63


class AudioError(ValueError):
    """Not a WAV we can play (the message says why)."""


def read_wav(data: bytes) -> tuple[npt.NDArray[np.float64], int]:
    """Mono samples in [-1, 1] and the sample rate of a PCM WAV file's bytes."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError("not a RIFF/WAVE file")
    offset, fmt, body = 12, None, None
    while offset + 8 <= len(data):
        chunk, size = struct.unpack_from("<4sI", data, offset)
        start = offset + 8
        if chunk == b"fmt ":
            fmt = data[start : start + size]
        elif chunk == b"data":
            body = data[start : start + size]  # a size past the end: what is there
            break
        offset = start + size + (size & 1)
    if fmt is None or len(fmt) < 16 or body is None:
        raise AudioError("no fmt or data chunk")
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack_from("<H", fmt, 24)[0]
    if tag != _PCM:
        raise AudioError(f"WAV format {tag} is not integer PCM")
    if channels < 1 or not 1000 <= rate <= 192000 or bits not in (8, 16, 24, 32):
        raise AudioError(f"unsupported WAV: {channels} channels, {rate} Hz, {bits} bits")
    width = bits // 8
    usable = len(body) - len(body) % (width * channels)
    raw = np.frombuffer(body[:usable], np.uint8)
    if width == 1:
        samples = (raw.astype(np.float64) - 128.0) / 128.0
    elif width == 3:
        triples = raw.reshape(-1, 3).astype(np.int32)
        value = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        value = np.where(value & 0x800000, value - (1 << 24), value)
        samples = value / float(1 << 23)
    else:
        kind = "<i2" if width == 2 else "<i4"
        samples = raw.view(kind).astype(np.float64) / float(1 << (bits - 1))
    mono = samples.reshape(-1, channels).mean(axis=1)
    return mono, rate


def resample(samples: npt.NDArray[np.float64], rate: int) -> npt.NDArray[np.float64]:
    """`samples` at `rate` as 8 kHz."""
    if rate == RATE or len(samples) == 0:
        return samples
    if rate > RATE:  # low-pass below the new Nyquist frequency first
        cutoff = 0.45 * RATE / rate
        n = np.arange(_TAPS) - (_TAPS - 1) / 2
        taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(_TAPS)
        samples = np.convolve(samples, taps / taps.sum(), mode="same")
    duration = len(samples) / rate
    times = np.arange(int(duration * RATE)) / RATE
    return np.interp(times, np.arange(len(samples)) / rate, samples)


def to_pcm16(samples: npt.NDArray[np.float64], level: float = 1.0) -> npt.NDArray[np.int16]:
    return np.clip(samples * level * 32767.0, -32768, 32767).astype(np.int16)


def wav_to_8k(data: bytes) -> npt.NDArray[np.int16]:
    """A WAV file's bytes as what the mixer plays: 8 kHz mono 16-bit."""
    samples, rate = read_wav(data)
    return to_pcm16(resample(samples, rate))
