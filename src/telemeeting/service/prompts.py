"""Prompts: text spoken by espeak-ng or a WAV fetched from a URL, turned into the 8 kHz samples
the mixer plays, and kept in a file the media node reads (`{recordings directory}/prompts`).

A URL is fetched by the server on a caller's behalf, so it must not reach the operator's own
network (SSRF): its host is resolved once, every address checked, and the connection made to
the checked address; redirects are followed by hand and checked the same way.

This runs in the API process before the change's transaction (it may take a second), never in
the media process: the mixer only ever reads a finished file. Files are named by the hash of
what made them, so the same prompt is rendered once.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import re
import shutil
import socket
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


#: Redirects followed at most (each target is checked like the URL itself).
MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def internal(address: Address) -> bool:
    """Loopback, private (RFC 1918, ULA), link-local, site-local, multicast, reserved,
    unspecified, or otherwise not globally routable (shared, documentation ranges): not for a
    prompt URL. An IPv6 address that carries an IPv4 one (IPv4-mapped, 6to4) is judged by both:
    2002:7f00:1:: is 127.0.0.1 to a 6to4 relay, whatever Python thinks of 2002::/16."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return internal(address.ipv4_mapped)  # ::ffff:10.0.0.1 is 10.0.0.1
        if address.sixtofour is not None and internal(address.sixtofour):
            return True
        if address.is_site_local:  # fec0::/10: deprecated, still routed inside some networks
            return True
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


async def _resolve(host: str, port: int) -> list[Address]:
    """Every address `host` resolves to (a literal address is itself, no lookup)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise errors.InvalidRequest(f"url's host {host} does not resolve") from exc
    found = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if not found:
        raise errors.InvalidRequest(f"url's host {host} does not resolve")
    return found


def _url(text: str, base: httpx.URL | None = None) -> httpx.URL:
    """`text` (a URL, or a redirect's Location relative to `base`) parsed, its host decoded
    (IDNA): a malformed one is the caller's -101, not an internal error."""
    try:
        url = base.join(text) if base is not None else httpx.URL(text)
        _ = url.host  # decodes an IDNA host, which may be malformed
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise errors.InvalidRequest(f"url is malformed: {exc}") from exc
    return url


async def checked_address(url: httpx.URL, allow_private: bool) -> Address:
    """The address to connect to for `url`: its host resolved once, every address checked
    (one internal address refuses the URL, whichever a later lookup would pick)."""
    if url.scheme not in ("http", "https") or not url.host:
        raise errors.InvalidRequest("url must be an http(s) URL with a host")
    port = url.port if url.port is not None else (443 if url.scheme == "https" else 80)
    if not 0 < port < 65536:  # httpx takes any number; the socket layer would raise
        raise errors.InvalidRequest(f"url's port {port} is not a TCP port")
    addresses = await _resolve(url.host, port)
    if not allow_private:
        for address in addresses:
            if internal(address):
                raise errors.InvalidRequest(
                    f"url's host {url.host} resolves to an internal address ({address}); "
                    "such URLs are refused unless [prompts] allow_private_urls is on"
                )
    return addresses[0]


async def _download(url: str, allow_private: bool) -> bytes:
    """GET `url`, connecting to the address that was checked (a second DNS answer cannot
    swap in another), with the name kept for Host, TLS SNI and certificate checks; redirects
    are followed by hand, each target checked the same way."""
    target = _url(url)
    client = httpx.AsyncClient(timeout=FETCH_SECONDS, follow_redirects=False)
    async with client:
        for _ in range(MAX_REDIRECTS + 1):
            address = await checked_address(target, allow_private)
            pinned = target.copy_with(host=str(address))
            headers = {"Host": target.netloc.decode("ascii")}
            extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
            request = client.build_request("GET", pinned, headers=headers, extensions=extensions)
            response = await client.send(request, stream=True)
            try:
                location = response.headers.get("location", "")
                if response.status_code in _REDIRECTS and location:
                    target = _url(location, base=target)
                    continue
                if response.status_code != 200:
                    raise errors.InvalidRequest(f"url answered HTTP {response.status_code}")
                return await _body(response)
            finally:
                await response.aclose()
    raise errors.InvalidRequest(f"url redirected more than {MAX_REDIRECTS} times")


async def _body(response: httpx.Response) -> bytes:
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


async def fetch(url: str, directory: Path, allow_private: bool = False) -> Path:
    """The WAV at `url` (any PCM rate, resampled to 8 kHz), as a prompt file. Internal
    addresses are refused unless `allow_private` (`[prompts] allow_private_urls`)."""
    try:
        data = await asyncio.wait_for(_download(url, allow_private), FETCH_SECONDS)
    except TimeoutError as exc:
        raise errors.InvalidRequest(f"url not fetched within {FETCH_SECONDS:g} s") from exc
    except httpx.HTTPError as exc:
        raise errors.InvalidRequest(f"url could not be fetched: {type(exc).__name__}") from exc
    try:
        samples = await asyncio.to_thread(wav_to_8k, data)
    except AudioError as exc:
        raise errors.InvalidRequest(f"url: {exc}") from exc
    return _store(directory, "wav:" + hashlib.sha256(data).hexdigest(), samples)
