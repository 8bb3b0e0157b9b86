"""Writing a meeting's mix to disk while it runs, then to MP3.

While recording, the mix goes into a plain 8 kHz 16-bit WAV file. Every second the buffered
audio is written and the header's sizes are fixed up, so a process that dies leaves a WAV that
any player opens, missing at most the last second. When the recording stops, the WAV is encoded
to MP3 (lameenc, off the mixing loop), a small JSON sidecar records its length, and the WAV is
removed only once the MP3 is complete (written to a temporary name, then renamed).
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

RATE = 8000
#: Buffered audio is written (and the header fixed up) this often, in 20 ms frames.
FLUSH_FRAMES = 50
#: MP3 bit rate for 8 kHz speech: 16 kbit/s is plenty for telephone audio.
MP3_KBPS = 16
_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")
HEADER_SIZE = _HEADER.size


def wav_header(data_bytes: int) -> bytes:
    """The 44-byte header of a mono 16-bit 8 kHz WAV holding `data_bytes` of samples."""
    return _HEADER.pack(
        b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, 1, 1, RATE, RATE * 2, 2, 16,
        b"data", data_bytes,
    )  # fmt: skip


def paths_for(wav: Path) -> tuple[Path, Path]:
    """The MP3 and the sidecar that belong beside a recording's WAV."""
    return wav.with_suffix(".mp3"), wav.with_suffix(".json")


class Recorder:
    """Appends 20 ms frames of the mix to a WAV file, crash-safe to within FLUSH_FRAMES."""

    def __init__(self, wav: Path) -> None:
        wav.parent.mkdir(parents=True, exist_ok=True)
        self.path = wav
        self._file: BinaryIO | None = wav.open("wb")
        self._file.write(wav_header(0))
        self._pending: list[bytes] = []
        self.data_bytes = 0

    @property
    def seconds(self) -> float:
        return self.data_bytes / (2 * RATE)

    def write(self, frame: npt.NDArray[np.int16]) -> None:
        self._pending.append(frame.astype("<i2", copy=False).tobytes())
        if len(self._pending) >= FLUSH_FRAMES:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered and make the header tell the truth about it."""
        if self._file is None or not self._pending:
            return
        chunk = b"".join(self._pending)
        self._pending.clear()
        self._file.seek(HEADER_SIZE + self.data_bytes)
        self._file.write(chunk)
        self.data_bytes += len(chunk)
        self._file.seek(0)
        self._file.write(wav_header(self.data_bytes))
        self._file.flush()

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass(frozen=True)
class Finished:
    """What a finished recording's sidecar says."""

    seconds: float
    bytes: int


def read_wav_samples(wav: Path) -> npt.NDArray[np.int16]:
    """The samples of one of our WAVs, trusting the file length over a header a crash left
    stale."""
    data = wav.read_bytes()[HEADER_SIZE:]
    usable = len(data) - len(data) % 2
    return np.frombuffer(data[:usable], dtype="<i2")


def encode_mp3(wav: Path) -> Finished:
    """Encode `wav` to MP3 beside it (atomically), write the sidecar, remove the WAV."""
    # Imported here: only the process that records pays for it (no type stubs exist).
    import lameenc  # type: ignore[import-not-found,unused-ignore]

    mp3, sidecar = paths_for(wav)
    samples = read_wav_samples(wav)
    encoder = lameenc.Encoder()
    encoder.set_in_sample_rate(RATE)
    encoder.set_channels(1)
    encoder.set_bit_rate(MP3_KBPS)
    encoder.set_quality(5)
    body = bytes(encoder.encode(samples.tobytes())) + bytes(encoder.flush())
    partial = mp3.with_suffix(".mp3.part")
    partial.write_bytes(body)
    os.replace(partial, mp3)
    finished = Finished(seconds=round(len(samples) / RATE, 2), bytes=len(body))
    sidecar.write_text(json.dumps({"seconds": finished.seconds, "bytes": finished.bytes}))
    wav.unlink(missing_ok=True)
    return finished


def finished(wav: Path) -> Finished | None:
    """The sidecar of a recording whose MP3 is complete, else None."""
    mp3, sidecar = paths_for(wav)
    try:
        data = json.loads(sidecar.read_text())
        return Finished(float(data["seconds"]), int(data["bytes"])) if mp3.exists() else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
