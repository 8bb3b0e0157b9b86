"""Prompts: text spoken by espeak-ng or a WAV fetched from a URL, turned into the 8 kHz samples
the mixer plays, and kept in a file the media node reads (`{recordings directory}/prompts`).

This runs in the API process before the change's transaction (it may take a second), never in
the media process: the mixer only ever reads a finished file. Files are named by the hash of
what made them, so the same prompt is rendered once.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
from pathlib import Path

import httpx
import numpy as np

from telemeeting.domain import errors
from telemeeting.telephony.media.audio import RATE, AudioError, wav_to_8k

#: A fetched WAV may be this large, and fetching it may take this long, at most.
MAX_WAV_BYTES = 5 * 1024 * 1024
FETCH_SECONDS = 10.0
#: espeak-ng gets this long to speak a text.
SPEAK_SECONDS = 10.0
#: Longer prompts are cut to this length.
MAX_PROMPT_SECONDS = 120
_CHINESE = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def voice_for(text: str) -> str:
    """espeak-ng's Mandarin voice for Chinese text, English otherwise."""
    return "cmn" if _CHINESE.search(text) else "en"


def _store(directory: Path, key: str, samples: np.ndarray) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.pcm"
    if not path.exists():
        partial = path.with_suffix(f".{os.getpid()}.part")
        samples[: MAX_PROMPT_SECONDS * RATE].astype("<i2").tofile(partial)
        os.replace(partial, path)
    return path


async def speak(text: str, directory: Path) -> Path:
    """`text` spoken by espeak-ng, as a prompt file."""
    voice = voice_for(text)
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise errors.InvalidRequest("text prompts need espeak-ng on the server")
    process = await asyncio.create_subprocess_exec(
        binary, "-v", voice, "--stdin", "--stdout",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wav, _ = await asyncio.wait_for(process.communicate(text.encode()), SPEAK_SECONDS)
    except TimeoutError as exc:
        process.kill()
        await process.wait()
        raise errors.InvalidRequest("text took too long to speak") from exc
    if process.returncode != 0:
        raise errors.InvalidRequest("espeak-ng could not speak the text")
    try:
        samples = await asyncio.to_thread(wav_to_8k, wav)
    except AudioError as exc:
        raise errors.InvalidRequest(f"espeak-ng output: {exc}") from exc
    return _store(directory, f"speak:{voice}:{text}", samples)


async def _download(url: str) -> bytes:
    client = httpx.AsyncClient(timeout=FETCH_SECONDS, follow_redirects=False)
    async with client, client.stream("GET", url) as response:
        if response.status_code != 200:
            raise errors.InvalidRequest(f"url answered HTTP {response.status_code}")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_WAV_BYTES:
            raise errors.InvalidRequest(f"url's WAV is over {MAX_WAV_BYTES} bytes")
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_WAV_BYTES:
                raise errors.InvalidRequest(f"url's WAV is over {MAX_WAV_BYTES} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


async def fetch(url: str, directory: Path) -> Path:
    """The WAV at `url` (any PCM rate, resampled to 8 kHz), as a prompt file."""
    try:
        data = await asyncio.wait_for(_download(url), FETCH_SECONDS)
    except TimeoutError as exc:
        raise errors.InvalidRequest(f"url not fetched within {FETCH_SECONDS:g} s") from exc
    except httpx.HTTPError as exc:
        raise errors.InvalidRequest(f"url could not be fetched: {type(exc).__name__}") from exc
    try:
        samples = await asyncio.to_thread(wav_to_8k, data)
    except AudioError as exc:
        raise errors.InvalidRequest(f"url: {exc}") from exc
    return _store(directory, "wav:" + hashlib.sha256(data).hexdigest(), samples)
