"""Prompt URLs must not reach the operator's own network (SSRF, issue 14): internal addresses
are refused before any connection unless `[prompts] allow_private_urls`; the fetch connects to
the address that was checked; redirects are checked like the URL itself."""

from __future__ import annotations

import asyncio
import http.server
import ipaddress
import threading
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from telemeeting.domain import errors
from telemeeting.service import prompts

INTERNAL = [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0",
    "224.0.0.1", "240.0.0.1", "100.64.0.1", "::1", "::", "fc00::1", "fe80::1", "ff02::1",
    "::ffff:10.0.0.1", "::ffff:127.0.0.1",
    # 6to4 carrying an internal IPv4 address (a relay delivers to it), NAT64, site-local:
    "2002:7f00:1::", "2002:a00:1::1", "2002:a9fe:a9fe::1", "64:ff9b::7f00:1", "fec0::1",
]  # fmt: skip
PUBLIC = ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "2002:808:808::1"]


@pytest.mark.parametrize("text", INTERNAL)
def test_internal_addresses(text: str) -> None:
    assert prompts.internal(ipaddress.ip_address(text))


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses(text: str) -> None:
    assert not prompts.internal(ipaddress.ip_address(text))


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/a.wav",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8080/a.wav",
        "https://192.168.0.10/a.wav",
        "http://[::ffff:7f00:1]/a.wav",
        "http://localhost:9/a.wav",  # a name (/etc/hosts) resolving to loopback
    ],
)
async def test_internal_urls_are_refused_without_connecting(url: str, tmp_path: Path) -> None:
    with pytest.raises(errors.InvalidRequest, match="internal address"):
        await prompts.fetch(url, tmp_path)


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/a.wav",  # 127.0.0.1 in decimal, octal, hex and short forms: the
        "http://017700000001/a.wav",  # resolver reads them as inet_aton does, and the
        "http://0x7f.1/a.wav",  # address it returns is what is checked
        "http://127.1/a.wav",
        "http://0/a.wav",
        "http://[2002:7f00:1::]/a.wav",
    ],
)
async def test_other_spellings_of_internal_addresses_are_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(errors.InvalidRequest, match="internal address"):
        await prompts.fetch(url, tmp_path)


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1/a.wav",  # unclosed bracket
        "http://example.com:x/a.wav",  # not a port
        "http://8.8.8.8:99999/a.wav",  # out of range: refused before any connection
        "http://8.8.8.8:0/a.wav",
        "http://xn--/a.wav",  # malformed IDNA
    ],
)
async def test_malformed_urls_are_a_clear_refusal_not_an_internal_error(
    url: str, tmp_path: Path
) -> None:
    with pytest.raises(errors.InvalidRequest, match=r"malformed|port"):
        await asyncio.wait_for(prompts.fetch(url, tmp_path, allow_private=True), 5)


async def test_other_schemes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(errors.InvalidRequest, match="http"):
        await prompts.fetch("file:///etc/passwd", tmp_path, allow_private=True)


def _wav(path: Path) -> None:
    t = np.arange(8000) / 8000
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes((0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2").tobytes())


class _Site(http.server.SimpleHTTPRequestHandler):
    """Serves files; /go?to=URL redirects there. Remembers each request's Host header."""

    hosts: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Site.hosts.append(self.headers.get("Host", ""))
        if self.path.startswith("/go?to="):
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/go?to="))
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "site"
    root.mkdir()
    _wav(root / "a.wav")
    handler = lambda *a: _Site(*a, directory=str(root))  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    _Site.hosts = []
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


async def test_loopback_is_refused_by_default_and_fetched_with_the_switch(
    site: str, tmp_path: Path
) -> None:
    with pytest.raises(errors.InvalidRequest, match="allow_private_urls"):
        await prompts.fetch(f"http://{site}/a.wav", tmp_path)
    assert _Site.hosts == []  # refused before connecting
    path = await prompts.fetch(f"http://{site}/a.wav", tmp_path, allow_private=True)
    assert path.stat().st_size == 8000 * 2
    port = site.rsplit(":", 1)[1]
    # By name: the connection goes to the checked address, the name stays in Host.
    await prompts.fetch(f"http://localhost:{port}/a.wav", tmp_path, allow_private=True)
    assert _Site.hosts == [site, f"localhost:{port}"]


async def test_a_redirect_to_an_internal_address_is_refused(
    site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only 127.0.0.2 counts as internal here, so that the local site stands in for a public one.
    monkeypatch.setattr(prompts, "internal", lambda address: str(address) == "127.0.0.2")
    port = site.rsplit(":", 1)[1]
    path = await prompts.fetch(f"http://{site}/go?to=/a.wav", tmp_path)  # same site: fine
    assert path.exists()
    with pytest.raises(errors.InvalidRequest, match=r"internal address \(127\.0\.0\.2\)"):
        await prompts.fetch(f"http://{site}/go?to=http://127.0.0.2:{port}/a.wav", tmp_path)
    chain = f"http://{site}/a.wav"
    for _ in range(prompts.MAX_REDIRECTS + 1):
        chain = f"http://{site}/go?to={chain}"
    with pytest.raises(errors.InvalidRequest, match="redirected more than"):
        await asyncio.wait_for(prompts.fetch(chain, tmp_path), 10)
