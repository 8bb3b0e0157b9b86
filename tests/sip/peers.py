"""Real SIP peers for the tests: sipp (scripted UAS) and baresip (a softphone), on 127.0.0.1.

A missing binary skips the test, except under CI=true where it fails: CI must run them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import wave
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from telemeeting.telephony.driver import LegReport, Progress

if TYPE_CHECKING:
    from tests.servers import Api

HOST = "127.0.0.1"
SCENARIOS = Path(__file__).parent / "scenarios"
RATE = 8000
#: The real-phone tests' three phones: `{name: (number, tone in Hz)}`, tones far apart.
PEERS = {
    "alice": ("13800000001", 440.0),
    "bob": ("13800000002", 660.0),
    "carol": ("13800000003", 880.0),
}


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        message = (
            f"{binary} is not installed: apt-get install -y --no-install-recommends "
            "sip-tester baresip-core"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                return False
    return True


_used: set[int] = set()


#: Where test peers' and servers' SIP/RTP ports are picked: below Linux's ephemeral range
#: (32768-60999 by default), which the kernel hands to outgoing connections and unbound UDP
#: sockets at any moment; a port found free there could be taken before its peer bound it
#: (PortsExhausted seen while a load bench ran beside the tests).
PORT_RANGE = (10000, 32000)


def _worker_range() -> tuple[int, int]:
    """This pytest-xdist worker's share of PORT_RANGE (all of it without xdist): `_used` keeps
    one process from picking a port twice, and the shares keep two workers apart, since a port
    is only checked free, not held, until its peer or server binds it."""
    low, high = PORT_RANGE
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or not worker[2:].isdigit() or count < 2:
        return low, high
    size = (high - low) // count
    start = low + int(worker[2:]) % count * size
    return start, start + size


def free_ports(count: int = 1, span: int = 1) -> list[int]:
    """`count` base ports, each with `span` consecutive free ports (baresip takes port+1)."""
    low, high = _worker_range()
    found: list[int] = []
    while len(found) < count:
        base = random.randrange(low, high - span, 2)
        block = range(base, base + span)
        if any(p in _used for p in block) or not all(_bindable(p) for p in block):
            continue
        _used.update(block)
        found.append(base)
    return found


@dataclass
class ReportLog:
    """A LegReport sink that tests can wait on."""

    reports: list[LegReport] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, report: LegReport) -> None:
        self.reports.append(report)
        self._changed.set()

    def of(self, leg_id: str) -> list[tuple[Progress, object]]:
        return [(r.progress, r.reason) for r in self.reports if r.leg_id == leg_id]

    async def wait_for(self, leg_id: str, progress: Progress, timeout: float = 10.0) -> LegReport:
        deadline = time.monotonic() + timeout
        while True:
            for report in self.reports:
                if report.leg_id == leg_id and report.progress is progress:
                    return report
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {progress} for {leg_id}; got {self.of(leg_id)}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


class Sipp:
    """One sipp UAS process for one call (`-m 1`): its exit status says whether our side
    followed the scenario."""

    def __init__(self, workdir: Path, scenario: str, *args: str, **fill: str) -> None:
        """`fill` replaces `{{name}}` in the scenario (sipp cannot take a status from -key)."""
        binary = need("sipp")
        self.port, self.media_port, self.control_port = free_ports(3)
        self.messages = workdir / f"sipp-{self.port}-messages.log"
        self.errors = workdir / f"sipp-{self.port}-errors.log"
        command = [binary]
        if scenario == "uas":
            command += ["-sn", "uas"]
        else:
            text = (SCENARIOS / scenario).read_text()
            for key, value in fill.items():
                text = text.replace("{{" + key + "}}", value)
            path = workdir / f"{self.port}-{scenario}"
            path.write_text(text)
            command += ["-sf", str(path)]
        command += [
            "-i", HOST, "-p", str(self.port), "-mi", HOST, "-mp", str(self.media_port),
            "-cp", str(self.control_port), "-m", "1", "-nostdin",
            "-timeout", "30", "-timeout_error",
            "-trace_msg", "-message_file", str(self.messages),
            "-trace_err", "-error_file", str(self.errors),
            *args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    @property
    def uri_host(self) -> str:
        return f"{HOST}:{self.port}"

    async def wait(self, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.process.poll() is None:
            self.stop()
            raise AssertionError(f"sipp still running; messages:\n{self.log()}")
        return self.process.returncode

    def log(self) -> str:
        text = self.messages.read_text(errors="replace") if self.messages.exists() else ""
        errors = self.errors.read_text(errors="replace") if self.errors.exists() else ""
        return text + "\n--- errors ---\n" + errors

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


def write_tone(path: Path, frequency: float, seconds: float = 20.0, level: float = 0.25) -> None:
    """8 kHz mono S16 WAV, what baresip's aufile source wants."""
    t = np.arange(int(8000 * seconds)) / 8000
    samples = (np.sin(2 * np.pi * frequency * t) * level * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(samples.tobytes())


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        assert wav.getsampwidth() == 2
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        return data.reshape(-1, wav.getnchannels())[:, 0].astype(np.float64)


def band_levels(samples: np.ndarray, frequencies: list[float], rate: int = 8000) -> dict:
    """Power (dB, arbitrary reference) in a ±10 Hz band around each frequency."""
    window = np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(samples * window)) ** 2
    bins = np.fft.rfftfreq(len(samples), 1 / rate)
    levels = {}
    for f in frequencies:
        band = spectrum[(bins > f - 10) & (bins < f + 10)]
        levels[f] = 10 * np.log10(band.sum() + 1e-9)
    return levels


class Baresip:
    """A headless baresip that auto-answers, plays a WAV as its microphone and records what it
    hears (`rec/dump-*-dec.wav`); its ctrl_tcp socket reports DTMF and can hang up."""

    def __init__(self, workdir: Path, name: str, source_wav: Path) -> None:
        binary = need("baresip")
        self.name = name
        self.dir = workdir / f"baresip-{name}"
        (self.dir / "rec").mkdir(parents=True, exist_ok=True)
        # baresip's sndfile module cuts a recording's path at 128 bytes (losing `.wav`), and
        # pytest's paths are long (longer still under xdist): it writes through a short link.
        self._short = Path(tempfile.mkdtemp(prefix="bs"))
        (self._short / "rec").symlink_to(self.dir / "rec")
        self.port, self.ctrl_port = free_ports(2, span=2)
        rtp = free_ports(1, span=40)[0]
        config = f"""poll_method epoll
sip_listen {HOST}:{self.port}
net_interface {HOST}
call_max_calls 4
audio_player alsa,null
audio_source aufile,{source_wav}
audio_alert alsa,null
ausrc_srate 8000
auplay_srate 8000
ausrc_channels 1
auplay_channels 1
rtp_ports {rtp}-{rtp + 38}
module_path /usr/lib/baresip/modules
module g711.so
module aufile.so
module sndfile.so
module alsa.so
module_app account.so
module_app menu.so
module_app ctrl_tcp.so
ctrl_tcp_listen {HOST}:{self.ctrl_port}
snd_path {self._short / "rec"}
"""
        (self.dir / "config").write_text(config)
        (self.dir / "accounts").write_text(
            f"<sip:{name}@{HOST}:{self.port}>;regint=0;answermode=auto\n"
        )
        self.logfile = (self.dir / "log").open("wb")
        self.process = subprocess.Popen(
            [binary, "-4", "-f", str(self.dir)],
            stdin=subprocess.DEVNULL,
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
        )
        self.events: list[dict] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pump: asyncio.Task[None] | None = None

    @property
    def uri(self) -> str:
        return f"sip:{self.name}@{HOST}:{self.port}"

    def log(self) -> str:
        return (self.dir / "log").read_text(errors="replace")

    async def ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while "baresip is ready" not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"baresip {self.name} did not start:\n{self.log()}")
            await asyncio.sleep(0.05)
        self._reader, self._writer = await asyncio.open_connection(HOST, self.ctrl_port)
        self._pump = asyncio.create_task(self._read_events())

    async def _read_events(self) -> None:
        assert self._reader is not None
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                length = (await self._reader.readuntil(b":"))[:-1]
                payload = await self._reader.readexactly(int(length))
                await self._reader.readexactly(1)  # the netstring's comma
                self.events.append(json.loads(payload))

    async def command(self, name: str, params: str = "") -> None:
        assert self._writer is not None
        data = json.dumps({"command": name, "params": params, "token": name}).encode()
        self._writer.write(str(len(data)).encode() + b":" + data + b",")
        await self._writer.drain()

    def event_types(self) -> list[str]:
        return [e.get("type", "") for e in self.events if e.get("event")]

    async def wait_event(self, kind: str, count: int = 1, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events if e.get("event") and e.get("type") == kind]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: {count}×{kind} not seen; {self.events}")
            await asyncio.sleep(0.05)

    def recording(self) -> Path:
        files = sorted((self.dir / "rec").glob("*-dec.wav"))
        assert files, f"{self.name} recorded nothing:\n{self.log()}"
        return files[-1]

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        if self._writer is not None:
            self._writer.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(3)
        self.logfile.close()
        shutil.rmtree(self._short, ignore_errors=True)  # the link only, not the recordings


def numbers_of(peers: dict[str, tuple[str, float]]) -> dict[str, str]:
    """Each peer's phone number from a test's `{name: (number, tone)}` table."""
    return {name: number for name, (number, _) in peers.items()}


def tones_of(peers: Mapping[str, tuple[str, float]]) -> dict[str, float]:
    """Each peer's tone from a test's `{name: (number, tone)}` table."""
    return {name: tone for name, (_, tone) in peers.items()}


def tone_phones(workdir: Path, tones: Mapping[str, float], seconds: float = 20.0) -> list[Baresip]:
    """One baresip per name, each playing its own tone. A phone hangs up when its file ends, so
    `seconds` must outlast the call. Not started: `serving_phones` or `ready_all` does that."""
    peers = []
    for name, tone in tones.items():
        wav = workdir / f"{name}.wav"
        write_tone(wav, tone, seconds=seconds)
        peers.append(Baresip(workdir, name, wav))
    return peers


async def ready_all(peers: list[Baresip]) -> list[Baresip]:
    """Start the phones together; if one fails, stop them all (no baresip is left running)."""
    try:
        await asyncio.gather(*(peer.ready() for peer in peers))
    except BaseException:
        await asyncio.gather(*(peer.stop() for peer in peers))
        raise
    return peers


async def key_in(phone: Baresip, keys: str, gap: float = 0.35) -> None:
    """Key digits on a phone as RFC 4733 events, one at a time (`gap` between keys)."""
    for key in keys:
        await phone.command("sndcode", key)
        await asyncio.sleep(gap)


async def call_api(api: Api, body: dict, func_url: str = "TeleMeeting.wx") -> dict:
    """One API call in production that must succeed (code "0"); its reply body."""
    reply = await asyncio.to_thread(api.post, body, env="production", func_url=func_url)
    assert reply.code == "0", reply.body
    return reply.body


def answered(phones: Iterable[str]) -> Callable[[dict[str, Any]], bool]:
    """For `api.wait_for`: these phones are members and have answered."""
    wanted = list(phones)

    def check(meeting: dict[str, Any]) -> bool:
        states = {m["phone"]: m["state"] for m in meeting["members"]}
        return all(states.get(p) == "answer" for p in wanted)

    return check


def all_answered(meeting: dict[str, Any]) -> bool:
    """For `api.wait_for`: every member has answered."""
    return all(m["state"] == "answer" for m in meeting["members"])


def ended_with_recording(meeting: dict[str, Any]) -> bool:
    """For `api.wait_for`: the meeting has ended and its recording is written."""
    return bool(meeting["state"] == "ended" and meeting["recordings"][0]["bytes"] > 0)


def decode_mp3(mp3: bytes, tmp_path: Path) -> np.ndarray:
    """A meeting recording (MP3) as 8 kHz samples, decoded by mpg123 (skipped without it)."""
    mpg123 = shutil.which("mpg123")
    if mpg123 is None:
        pytest.skip("mpg123 (Debian) decodes the recording")
    source, out = tmp_path / "meeting.mp3", tmp_path / "meeting.wav"
    source.write_bytes(mp3)
    subprocess.run([mpg123, "-q", "-w", str(out), str(source)], check=True)
    with wave.open(str(out)) as reader:
        assert reader.getframerate() == RATE
        return np.frombuffer(reader.readframes(reader.getnframes()), np.int16).astype(np.float64)


def recordings_toml(tmp_path: Path) -> str:
    """A `[recordings]` section keeping the test's recordings in its own directory."""
    return f'[recordings]\ndirectory = "{tmp_path / "recordings"}"\n\n'


def phones_config(
    path: Path, peers: list[Baresip], numbers: dict[str, str], extra: str = ""
) -> Path:
    """A server config whose SIP routes send each phone's number to that baresip peer, on free
    SIP and RTP ports; `extra` is more TOML (e.g. a `[recordings]` directory)."""
    (sip_port,) = free_ports(1, span=2)  # a second media worker listens on sip_port + 1
    (rtp_base,) = free_ports(1, span=40)
    routes = "".join(
        f'[[sip.routes]]\nmatch = "^{numbers[p.name]}$"\ntarget = "{p.uri}"\n\n' for p in peers
    )
    path.write_text(
        f'[sip]\nlocal_host = "127.0.0.1"\nlocal_port = {sip_port}\n'
        f"rtp_port_min = {rtp_base}\nrtp_port_max = {rtp_base + 39}\n\n{extra}{routes}"
    )
    return path


@contextlib.asynccontextmanager
async def serving_phones(
    tmp_path: Path, peers: list[Baresip], numbers: dict[str, str], extra: str = ""
) -> AsyncIterator[Api]:
    """The peers ready, a real `telemeeting serve` (SQLite) routing their numbers to them, and a
    tenant's Api on it; the peers and the server are stopped on leaving, whatever happened."""
    from tests.servers import Api, start_server  # tests.servers is heavy; only real-phone tests

    server = None
    try:
        await asyncio.gather(*(peer.ready() for peer in peers))
        config = phones_config(tmp_path / "telemeeting.toml", peers, numbers, extra)
        server = await asyncio.to_thread(
            start_server,
            f"sqlite+aiosqlite:///{tmp_path / 'tm.db'}",
            tmp_path,
            None,
            ("--config", str(config)),
        )
        yield Api(server, await asyncio.to_thread(server.new_tenant))
    finally:
        await asyncio.gather(*(peer.stop() for peer in peers))
        if server is not None:
            server.stop()
