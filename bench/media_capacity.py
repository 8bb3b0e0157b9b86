"""Participants per media process: the real RTP path (RtpStream, jitter buffer, G.711, N-1 mix
on the 20 ms clock) in this process, RTP load from a separate generator process.

For each step N (5-member rooms) the generator (bench/_rtp_load.py: every phone on one socket,
niced so that it yields the cores to the node, `--generator-nice`) sends 50 packets/s per
participant for the warm-up plus the measurement window, and counts what comes back, per
phone. Printed per step: the node's CPU and its tick's thread CPU time (which other programs'
load barely moves), the generator's CPU, packet rates, inbound and outbound loss (and how many
phones lost any frame), tick lateness p50/p99/max; then the highest N with zero loss and
p99 < 5 ms. The node's garbage collector is settled as a media node's is (telemeeting.nodes).

With `--media K` (issue 14), K of the rooms also record (the mix to a WAV, encoded to MP3 when
the step ends, off the tick) and detect speakers, as meetings with `record` and `speakerevents`
do: what those features cost shows as the difference from a run without.

With `--nodes K` (issue 16), one meeting of `--participants` members is split evenly across K
media processes joined by cascade links (a full mesh, one RTP stream each way per pair), each
node loaded by its own generator process. Printed per node: CPU, loss in and out, tick lateness
p50/p99/max, and what the links cost: the tick's time spent on them (reading, summing, sending)
as a share of a core and per tick, their packets and any loss between nodes.

With `--inbound-share S --ivr-callers K` (issue 15), that share of each step's legs dialled in:
each is answered from a phone's offer and admitted through the real IvrSession (keys, then the
admission), then joined as the engine joins it; and K more calls are in the IVR during the
window, hearing the welcome prompt (espeak-ng) paced by the node's clock, as at the start of
an all-hands. Printed besides: the IVR callers' loss, their frames against the 20 ms clock
(frames sent, gaps between frames, lateness), and the CPU a tick spends on the rooms and on
the IVR callers (thread CPU time, which other programs' load does not inflate).
`--ivr-own-timers` runs the IVR callers as they first ran (a timer per call, packets by the
event loop's callbacks), for comparison.

    python bench/media_capacity.py [--steps 50,100,200,400,600,800] [--seconds 5] [--media 2]
    python bench/media_capacity.py --nodes 2 [--participants 1000] [--seconds 5] [--codec L16]
    python bench/media_capacity.py --steps 400,500,600 --inbound-share 0.5 --ivr-callers 200
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from _rtp_load import Pacing, generator_main  # bench/ is not a package: the script's dir
from telemeeting.runtime import settle_garbage_collector
from telemeeting.service import prompts
from telemeeting.telephony.dialin import REFUSED, Admission
from telemeeting.telephony.ivr.machine import Ivr, Prompt, Verdict
from telemeeting.telephony.ivr.session import IvrSession, Samples
from telemeeting.telephony.media import sdp
from telemeeting.telephony.media.cascade import L16, PAYLOAD_TYPES
from telemeeting.telephony.media.cascade_control import CascadeLinks, OpenCascade
from telemeeting.telephony.media.conference import Conference
from telemeeting.telephony.media.control import MediaControl
from telemeeting.telephony.media.ports import PortPool
from telemeeting.telephony.media.stream import RtpStream
from telemeeting.telephony.orders import ConfigureMeeting, StartRecording
from telemeeting.telephony.sip.engine import SipEngine

HOST = "127.0.0.1"
ROOM = 5
WARMUP = 1.0
#: The load generators' niceness (--generator-nice): they stand for phones on other machines.
GENERATOR_NICE = 10
#: What runs the phones (--generator): "c" (bench/_rtp_load.c, if gcc builds it) or "python".
GENERATOR = "c"


def _start_generator(count: int) -> tuple[Connection, multiprocessing.process.BaseProcess]:
    """A load generator process for `count` phones (bench/_rtp_load.py), and its pipe."""
    context = multiprocessing.get_context("spawn")
    conn, child = context.Pipe()
    generator = context.Process(
        target=generator_main, args=(child, count, GENERATOR_NICE, GENERATOR), daemon=True
    )
    generator.start()
    return conn, generator


def _losses(sent: list[int], rx: list[int], tx: list[int], received: list[int]) -> dict[str, float]:
    """Loss both ways, in total (%) and per phone (how many phones lost any frame): `sent` by
    each phone, `rx` by its leg, `tx` by its leg and `received` by its phone."""

    def loss(got: int, of: int) -> float:
        return 100 * (1 - got / of) if of else 0.0

    return {
        "loss_in": loss(sum(rx), sum(sent)),
        "loss_out": loss(sum(received), sum(tx)),
        "phones_short_in": sum(got < of for got, of in zip(rx, sent, strict=True)),
        "phones_short_out": sum(got < of for got, of in zip(received, tx, strict=True)),
    }


def _settle() -> None:
    """The garbage collector as a media node's process runs it (telemeeting.nodes): without
    this a full collection of the modules loaded here stalls a tick by tens of ms."""
    settle_garbage_collector()


# --- the media process under test (this one) ------------------------------------------------
async def run_step(count: int, seconds: float, media: int = 0) -> dict[str, float]:
    conn, generator = _start_generator(count)
    loop = asyncio.get_running_loop()
    peer_ports: list[int] = await loop.run_in_executor(None, conn.recv)
    pool = PortPool(40000, 49999)
    conference = Conference()
    streams: list[RtpStream] = []
    for index, port in enumerate(peer_ports):
        _, stream, _ = await pool.bind(HOST, RtpStream)
        stream.remote = (HOST, port)
        member = conference.add(f"room{index // ROOM}", str(index), stream)
        member.joined = True
        streams.append(stream)
    conn.send([s.transport.get_extra_info("sockname")[1] for s in streams])  # type: ignore[union-attr]
    control = MediaControl(conference)
    speaker_reports = 0

    def on_speakers(room: str, legs: tuple[str, ...]) -> None:
        nonlocal speaker_reports
        speaker_reports += 1

    conference.on_speakers = on_speakers
    workdir = tempfile.TemporaryDirectory(prefix="media-capacity-")
    for index in range(min(media, count // ROOM)):
        room = f"room{index}"
        control.apply(ConfigureMeeting(room, "bench", speaker_events=True))
        control.apply(StartRecording(room, room, str(Path(workdir.name) / f"{room}.wav"), "b"))
    _settle()
    spent = _time_ticks(conference)
    mixer = asyncio.create_task(conference.run())
    await asyncio.sleep(WARMUP)
    conference.lateness.clear()
    spent.update(rooms=0.0, ivr=0.0, ticks=0.0)
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    tick_ms = 1000 * spent["rooms"] / max(spent["ticks"], 1.0)
    lateness = sorted(conference.lateness)
    conn.send("stop")
    sent, pacing = await loop.run_in_executor(None, conn.recv)
    await asyncio.sleep(0.2)  # the last packets in flight
    mixer.cancel()
    recorded = sum(m.recorder.seconds for m in conference.media.values() if m.recorder is not None)
    await control.close()  # the MP3s, encoded in a thread
    mp3_bytes = sum(p.stat().st_size for p in Path(workdir.name).glob("*.mp3"))
    workdir.cleanup()
    rx = [s.rx_packets for s in streams]
    tx = [s.tx_packets for s in streams]
    conn.send("report")
    received: list[int] = await loop.run_in_executor(None, conn.recv)
    generator.join(5)
    for stream in streams:
        stream.close()
    return {
        "n": count,
        "cpu": 100 * cpu / wall,
        "generator_cpu": pacing["cpu"],
        "generator_held": _held_back(pacing),
        "tick_ms": tick_ms,
        "rx_pps": sum(rx) / (seconds + WARMUP),
        "tx_pps": sum(tx) / (seconds + WARMUP),
        **_losses(sent, rx, tx, received),
        **_tick_figures([x * 1000 for x in lateness]),
        "recorded_s": recorded,
        "mp3_kb": mp3_bytes / 1024,
        "speaker_reports": speaker_reports,
    }


def _held_back(pacing: Pacing) -> float:
    """The share (%) of the generator's ticks it sent late or not at all."""
    return 100 * (pacing["late"] + pacing["skipped"]) / max(pacing["ticks"], 1)


def _print_short(r: dict[str, float]) -> None:
    """Name the phones that lost frames, if any did (the totals alone could hide one), and
    say when the load generator itself was held back (then its figures are suspect)."""
    if r["phones_short_in"] or r["phones_short_out"]:
        print(
            f"      phones with a frame lost: {r['phones_short_in']:.0f} on the way in,"
            f" {r['phones_short_out']:.0f} on the way out",
            flush=True,
        )
    if r["generator_held"] >= 1:
        print(
            f"      the load generator was held back: {r['generator_held']:.0f} % of its ticks"
            " sent late or skipped (a busy machine; see --generator-nice)",
            flush=True,
        )


async def main(steps: list[int], seconds: float, media: int = 0) -> None:
    print(f"media capacity: {ROOM}-member rooms, {seconds:g} s a step, load from a 2nd process")
    if media:
        print(f"{media} room(s) recording and detecting speakers")
    header = (
        "    N  rooms   cpu%  tick CPU ms  load cpu%    rx pps    tx pps  loss in%  loss out%"
        "   p50 ms  p99 ms  max ms"
    )
    print(header)
    best = 0
    for count in steps:
        r = await run_step(count, seconds, media)
        print(
            f"{count:5d} {count // ROOM:6d} {r['cpu']:6.1f} {r['tick_ms']:12.2f}"
            f" {r['generator_cpu']:10.1f}"
            f" {r['rx_pps']:9.0f} {r['tx_pps']:9.0f}"
            f" {r['loss_in']:9.3f} {r['loss_out']:10.3f} {r['p50']:8.2f} {r['p99']:7.2f}"
            f" {r['max']:7.2f}",
            flush=True,
        )
        _print_short(r)
        if media:
            print(
                f"      recorded {r['recorded_s']:.1f} s ({r['mp3_kb']:.0f} KiB of MP3),"
                f" {r['speaker_reports']:.0f} speaker reports",
                flush=True,
            )
        ok = r["loss_in"] <= 0 and r["loss_out"] <= 0 and r["p99"] < 5.0
        if ok:
            best = count
    print(f"highest load with zero loss and p99 < 5 ms: {best} participants per media process")


# --- one meeting across several media processes (--nodes K) ----------------------------------
MEETING = "all-hands"
_NODE_PORTS = 4000  # each node's slice of 40000-…: RTP legs and its cascade links


def node_main(conn: Connection, index: int, names: list[str], count: int, codec: str) -> None:
    """One media process of the meeting: `count` RTP legs and a link to every other node."""
    asyncio.run(_node(conn, index, names, count, codec))


async def _node(conn: Connection, index: int, names: list[str], count: int, codec: str) -> None:
    loop = asyncio.get_running_loop()

    async def recv() -> object:
        return await loop.run_in_executor(None, conn.recv)

    base = 40000 + index * _NODE_PORTS
    pool = PortPool(base, base + _NODE_PORTS - 1)
    conference = Conference()
    links = CascadeLinks(conference, pool, HOST)
    me, peers = names[index], [name for name in names if name != names[index]]
    ends = {
        peer: await links.open(OpenCascade(MEETING, peer, "bench", codec=codec)) for peer in peers
    }
    conn.send({peer: end.port for peer, end in ends.items()})
    theirs: dict[str, int] = await recv()  # type: ignore[assignment]  # peer -> its port for me
    for peer in peers:
        await links.open(OpenCascade(MEETING, peer, "bench", HOST, theirs[peer], codec))
    generator_ports: list[int] = await recv()  # type: ignore[assignment]
    streams: list[RtpStream] = []
    for leg, port in enumerate(generator_ports):
        _, stream, _ = await pool.bind(HOST, RtpStream)
        stream.remote = (HOST, port)
        conference.add(MEETING, f"{me}-{leg}", stream).joined = True
        streams.append(stream)
    conn.send([s.transport.get_extra_info("sockname")[1] for s in streams])  # type: ignore[union-attr]
    _settle()
    timed = _time_ticks(conference)
    mixer = asyncio.create_task(conference.run())
    await recv()  # "start": the warm-up is over
    conference.lateness.clear()
    timed.update(rooms=0.0, ivr=0.0, ticks=0.0)
    cpu, wall, spent = time.process_time(), time.perf_counter(), conference.cascade_seconds
    ticks = conference.ticks
    await recv()  # "end"
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    spent, ticks = conference.cascade_seconds - spent, conference.ticks - ticks
    conn.send(
        {
            "cpu": 100 * cpu / wall,
            "tick_ms": 1000 * timed["rooms"] / max(timed["ticks"], 1.0),
            "ticks_run": 100 * timed["ticks"] * conference.tick_seconds / wall,
            "link_cpu": 100 * spent / wall,
            "link_us_per_tick": 1e6 * spent / max(ticks, 1),
            **_tick_figures([x * 1000 for x in conference.lateness]),
        }
    )
    await recv()  # "stop": the generator has stopped sending
    await asyncio.sleep(0.2)  # the last packets in flight
    mixer.cancel()
    conn.send(
        {
            "rx": [s.rx_packets for s in streams],
            "tx": [s.tx_packets for s in streams],
            "links": links.stats(),
        }
    )
    links.close_all()
    for stream in streams:
        stream.close()


async def run_nodes(nodes: int, participants: int, seconds: float, codec: str) -> None:
    names = [chr(ord("A") + i) for i in range(nodes)]
    counts = [participants // nodes + (1 if i < participants % nodes else 0) for i in range(nodes)]
    per_link = 2 * 160 if codec == L16 else 160
    print(
        f"media capacity: one meeting of {participants} across {nodes} media processes"
        f" ({', '.join(f'{n}: {c}' for n, c in zip(names, counts, strict=True))}),"
        f" cascade links in {codec} ({(per_link + 40) * 8 * 50 / 1000:.0f} kbit/s each way"
        f" with IP/UDP/RTP headers), {seconds:g} s measured after {WARMUP:g} s, one load"
        f" generator process per node (nice {GENERATOR_NICE})"
    )
    context = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()

    async def recv(conn: Connection) -> object:
        return await loop.run_in_executor(None, conn.recv)

    node_conns, generator_conns, processes = [], [], []
    for index, count in enumerate(counts):
        mine, theirs = context.Pipe()
        node = context.Process(
            target=node_main, args=(theirs, index, names, count, codec), daemon=True
        )
        node.start()
        mine_g, generator = _start_generator(count)
        node_conns.append(mine)
        generator_conns.append(mine_g)
        processes += [node, generator]
    ends: list[dict[str, int]] = [await recv(c) for c in node_conns]  # type: ignore[misc]
    for index, conn in enumerate(node_conns):
        conn.send({names[j]: ends[j][names[index]] for j in range(nodes) if j != index})
    for conn, gen in zip(node_conns, generator_conns, strict=True):
        conn.send(await recv(gen))  # the generator's ports to the node
        gen.send(await recv(conn))  # the node's leg ports to the generator
    await asyncio.sleep(WARMUP)
    for conn in node_conns:
        conn.send("start")
    await asyncio.sleep(seconds)
    for conn in node_conns:
        conn.send("end")
    window: list[dict[str, float]] = [await recv(c) for c in node_conns]  # type: ignore[misc]
    sent, pacings = [], []
    for gen in generator_conns:
        gen.send("stop")
        phones, pacing = await recv(gen)  # type: ignore[misc]
        sent.append(phones)
        pacings.append(pacing)
    for conn in node_conns:
        conn.send("stop")
    totals: list[dict[str, object]] = [await recv(c) for c in node_conns]  # type: ignore[misc]
    received = []
    for gen in generator_conns:
        gen.send("report")
        received.append(await recv(gen))
    for process in processes:
        process.join(5)
    print(
        "node  legs   cpu%  tick CPU ms  ticks run%  load cpu%  loss in%  loss out%"
        "   p50 ms  p99 ms  max ms   link cpu%  link µs/tick"
    )
    ok = True
    for index, name in enumerate(names):
        w, t = window[index], totals[index]
        r = _losses(sent[index], t["rx"], t["tx"], received[index])  # type: ignore[arg-type]
        ok = ok and r["loss_in"] <= 0 and r["loss_out"] <= 0 and w["p99"] < 5.0
        print(
            f"{name:>4} {counts[index]:5d} {w['cpu']:6.1f} {w['tick_ms']:12.2f}"
            f" {w['ticks_run']:11.1f} {pacings[index]['cpu']:10.1f}"
            f" {r['loss_in']:9.3f} {r['loss_out']:10.3f}"
            f" {w['p50']:8.2f} {w['p99']:7.2f} {w['max']:7.2f} {w['link_cpu']:11.3f}"
            f" {w['link_us_per_tick']:13.1f}"
        )
        _print_short({**r, "generator_held": _held_back(pacings[index])})
    print("links (packets each way over the whole run; lost = jitter-buffer gaps):")
    for index, name in enumerate(names):
        for link in totals[index]["links"]:  # type: ignore[attr-defined]
            print(
                f"  {name} -> {link['peer_node']}: sent {link['tx_packets']},"
                f" {name} <- {link['peer_node']}: received {link['rx_packets']},"
                f" lost {link['lost']}, trimmed {link['trimmed']}, refused {link['rx_refused']}"
            )
    verdict = "meets" if ok else "does NOT meet"
    print(f"{participants} participants on {nodes} nodes {verdict} zero loss and p99 < 5 ms")


# --- dial-in: inbound legs and callers in the IVR (--inbound-share, --ivr-callers; issue 15) ----
#: The welcome prompt, as the engine renders it (espeak-ng, Mandarin).
_WELCOME = "欢迎参加电话会议。请输入会议号，并以井号键结束。"


class _Phone:
    """The SIP side of an inbound call as IvrSession sees it: keys by SIP INFO land in
    `on_key` (none are sent here; RFC 4733 keys would arrive on the stream)."""

    def __init__(self) -> None:
        self.on_key: Callable[[str], None] = lambda _key: None


class _TimedStream(RtpStream):
    """An IVR caller's stream that notes when each of its frames leaves (the prompt's pacing)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent_at: list[float] = []

    def write_payload(self, payload: bytes | None) -> None:
        self.sent_at.append(time.monotonic())
        super().write_payload(payload)


def _answered_stream(stream: RtpStream, phone_port: int) -> None:
    """Point the stream at the phone as engine._serve_inbound does on an INVITE: the phone's
    offer (PCMU, PCMA, telephone-event 101) read by the same code."""
    SipEngine._point_stream(stream, sdp.parse(sdp.offer(HOST, phone_port, 1)))


async def _admitted_leg(
    conference: Conference, pool: PortPool, room: str, key: str, phone_port: int
) -> RtpStream:
    """One dial-in leg, made as the engine makes it: answered from the phone's offer, through
    the real IvrSession (meeting number and PIN keyed, the admission granted), then joined to
    the room as engine._answered joins any answered leg."""
    _, stream, _ = await pool.bind(HOST, RtpStream)
    _answered_stream(stream, phone_port)
    admission = Admission(Verdict.ADMITTED, room, key)

    async def admit(meid: str, pin: str) -> Admission:
        return admission

    session = IvrSession(_Phone(), stream, Ivr(), {}, admit, clock=conference)
    for digit in "1001#1234#":
        session.keys.put_nowait(digit)
    if await session.run() is not admission:
        raise RuntimeError("the IVR did not admit the bench caller")
    member = conference.add(room, key, stream)
    member.muted = admission.muted
    conference.join(room, key)
    return stream


async def _welcome(seconds: float) -> Samples:
    """The spoken welcome, repeated to last `seconds` (so it plays through the window); a
    440 Hz tone of that length without espeak-ng (the cost per frame is the same)."""
    try:
        with tempfile.TemporaryDirectory(prefix="media-capacity-prompts-") as directory:
            path = await prompts.speak(_WELCOME, Path(directory))
            once = np.fromfile(path, dtype="<i2")
    except Exception as exc:
        print(f"(no spoken prompt: {exc}; a tone instead)")
        once = (np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000) * 4000).astype(np.int16)
    return np.tile(once, int(seconds * 8000) // len(once) + 1)


async def _ivr_caller(
    conference: Conference, pool: PortPool, phone_port: int, welcome: Samples, own_timer: bool
) -> tuple[_TimedStream, asyncio.Task[Admission | None]]:
    """A caller who has been answered and hears the welcome prompt, keying nothing yet: the
    IvrSession with its key receiver on the stream and its prompt player on the node's clock,
    as engine._serve_inbound runs it (with `own_timer`, as it ran first: a timer per call and
    packets by the event loop's callbacks)."""
    _, stream, _ = await pool.bind(HOST, _TimedStream)
    _answered_stream(stream, phone_port)

    async def admit(meid: str, pin: str) -> Admission:
        return REFUSED  # never asked: nothing is keyed

    session = IvrSession(
        _Phone(),
        stream,
        Ivr(),
        {Prompt.ENTER_MEETING: welcome},
        admit,
        silence_seconds=3600,
        clock=None if own_timer else conference,
    )
    return stream, asyncio.create_task(session.run(), name="bench-ivr")


def _time_ticks(conference: Conference) -> dict[str, float]:
    """CPU time (this thread's, so other programs' load does not count) the clock spends on
    the rooms and on the callers in the IVR, summed into the dict returned; the measure that
    holds on a busy machine, where the ticks' lateness and loss depend on what else runs."""
    spent = {"rooms": 0.0, "ivr": 0.0, "ticks": 0.0}
    rooms, attached = conference.tick, conference.tick_attached

    def tick() -> None:
        started = time.thread_time()
        rooms()
        spent["rooms"] += time.thread_time() - started
        spent["ticks"] += 1

    def tick_attached() -> None:
        started = time.thread_time()
        attached()
        spent["ivr"] += time.thread_time() - started

    conference.tick = tick  # type: ignore[method-assign]
    conference.tick_attached = tick_attached  # type: ignore[method-assign]
    return spent


def _pacing(streams: list[_TimedStream], start: float, end: float) -> dict[str, float]:
    """How the IVR callers' frames left during [start, end): frames sent per call against the
    20 ms clock, the gaps between a call's frames, and each frame's lateness against the best
    fitting 20 ms grid of its call (so a call whose frames are all equally late counts 0)."""
    gaps: list[float] = []
    late: list[float] = []
    frames: list[int] = []
    for stream in streams:
        times = np.array([t for t in stream.sent_at if start <= t < end])
        frames.append(len(times))
        if len(times) < 2:
            continue
        gaps.extend(np.diff(times) * 1000)
        offsets = times - np.arange(len(times)) * 0.02
        late.extend((offsets - offsets.min()) * 1000)
    expected = (end - start) / 0.02
    gaps.sort()
    late.sort()

    def pick(values: list[float], share: float) -> float:
        return values[min(len(values) - 1, int(len(values) * share))] if values else 0.0

    return {
        "frames_min": 100 * min(frames, default=0) / expected,
        "frames_mean": 100 * statistics.fmean(frames or [0]) / expected,
        "gap_p50": pick(gaps, 0.5),
        "gap_p99": pick(gaps, 0.99),
        "gap_max": gaps[-1] if gaps else 0.0,
        "late_p50": pick(late, 0.5),
        "late_p99": pick(late, 0.99),
        "late_max": late[-1] if late else 0.0,
    }


async def run_dialin_step(
    count: int, seconds: float, share: float, callers: int, welcome: Samples, own_timers: bool
) -> dict[str, float]:
    """One step: `count` legs in 5-member rooms (the `share` of them dial-in legs, spread over
    the rooms), plus `callers` calls in the IVR, all loaded by one generator process."""
    conn, generator = _start_generator(count + callers)
    loop = asyncio.get_running_loop()
    peer_ports: list[int] = await loop.run_in_executor(None, conn.recv)
    pool = PortPool(40000, 49999)
    conference = Conference()
    streams: list[RtpStream] = []
    inbound = round(count * share)
    for index, port in enumerate(peer_ports[:count]):
        room, key = f"room{index // ROOM}", str(index)
        if index * inbound // count != (index + 1) * inbound // count:  # evenly spread
            streams.append(await _admitted_leg(conference, pool, room, key, port))
        else:  # a dialled leg, as engine._answered joins it
            _, stream, _ = await pool.bind(HOST, RtpStream)
            stream.remote = (HOST, port)
            conference.add(room, key, stream)
            conference.join(room, key)
            streams.append(stream)
    _settle()
    spent = _time_ticks(conference)
    mixer = asyncio.create_task(conference.run())
    ivr: list[_TimedStream] = []
    sessions: list[asyncio.Task[Admission | None]] = []
    for port in peer_ports[count:]:  # all dialling in at once
        stream, session = await _ivr_caller(conference, pool, port, welcome, own_timers)
        ivr.append(stream)
        sessions.append(session)
    conn.send([s.transport.get_extra_info("sockname")[1] for s in [*streams, *ivr]])  # type: ignore[union-attr]
    await asyncio.sleep(WARMUP)
    conference.lateness.clear()
    spent.update(rooms=0.0, ivr=0.0, ticks=0.0)
    cpu, wall, start = time.process_time(), time.perf_counter(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, wall, end = time.process_time() - cpu, time.perf_counter() - wall, time.monotonic()
    window = dict(spent)  # the clock runs on while the step is wound up
    ticks = max(window["ticks"], 1.0)
    tick_ms = {"rooms_ms": 1000 * window["rooms"] / ticks, "ivr_ms": 1000 * window["ivr"] / ticks}
    lateness = sorted(conference.lateness)
    conn.send("stop")
    sent, _ = await loop.run_in_executor(None, conn.recv)
    await asyncio.sleep(0.2)  # the last packets in flight
    mixer.cancel()
    for session in sessions:
        session.cancel()
    await asyncio.gather(*sessions, return_exceptions=True)
    conn.send("report")
    received: list[int] = await loop.run_in_executor(None, conn.recv)
    generator.join(5)

    def loss(got: int, of: int) -> float:
        return 100 * (1 - got / of) if of else 0.0

    legs_tx = sum(s.tx_packets for s in streams)
    ivr_tx = sum(s.tx_packets for s in ivr)
    result = {
        "n": count,
        "inbound": inbound,
        "cpu": 100 * cpu / wall,
        "other_cpu": 100 * (cpu - window["rooms"] - window["ivr"]) / wall,
        "ticks_run": 100 * window["ticks"] * conference.tick_seconds / wall,
        **tick_ms,
        "rx_pps": sum(s.rx_packets for s in [*streams, *ivr]) / (seconds + WARMUP),
        "tx_pps": (legs_tx + ivr_tx) / (seconds + WARMUP),
        "loss_in": loss(sum(s.rx_packets for s in streams), sum(sent[:count])),
        "loss_out": loss(sum(received[:count]), legs_tx),
        "ivr_loss_in": loss(sum(s.rx_packets for s in ivr), sum(sent[count:])),
        "ivr_loss_out": loss(sum(received[count:]), ivr_tx),
        **_tick_figures([x * 1000 for x in lateness]),
        **_pacing(ivr, start, end),
    }
    for stream in [*streams, *ivr]:
        stream.close()
    return result


def _tick_figures(ms: list[float]) -> dict[str, float]:
    """Median, 99th percentile and maximum of tick lateness figures (in any order)."""
    ms = sorted(ms) or [0.0]
    return {
        "p50": statistics.median(ms),
        "p99": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        "max": ms[-1],
    }


async def main_dialin(
    steps: list[int], seconds: float, share: float, callers: int, own_timers: bool = False
) -> None:
    pacing = "a timer each" if own_timers else "the node's clock"
    print(
        f"media capacity with dial-in: {ROOM}-member rooms, {100 * share:g} % of each step's legs"
        f" dialled in (admitted through the IVR), {callers} more callers in the IVR hearing the"
        f" welcome prompt (paced by {pacing}), {seconds:g} s a step after {WARMUP:g} s, load from"
        " a 2nd process"
    )
    welcome = await _welcome(seconds + WARMUP + 5)
    print(
        "    N    in   cpu%    rx pps    tx pps  loss in%  loss out%   p50 ms  p99 ms  max ms"
        "   | IVR loss in/out%  frames min/mean%  gap p50/p99/max ms  late p50/p99/max ms"
    )
    best = 0
    for count in steps:
        r = await run_dialin_step(count, seconds, share, callers, welcome, own_timers)
        print(
            f"{count:5d} {r['inbound']:5.0f} {r['cpu']:6.1f} {r['rx_pps']:9.0f} {r['tx_pps']:9.0f}"
            f" {r['loss_in']:9.3f} {r['loss_out']:10.3f} {r['p50']:8.2f} {r['p99']:7.2f}"
            f" {r['max']:7.2f}   | {r['ivr_loss_in']:7.3f}/{r['ivr_loss_out']:.3f}"
            f"  {r['frames_min']:8.1f}/{r['frames_mean']:.1f}"
            f"  {r['gap_p50']:6.1f}/{r['gap_p99']:.1f}/{r['gap_max']:.1f}"
            f"  {r['late_p50']:6.1f}/{r['late_p99']:.1f}/{r['late_max']:.1f}",
            flush=True,
        )
        print(
            f"      CPU a tick: rooms {r['rooms_ms']:.2f} ms, IVR callers {r['ivr_ms']:.2f} ms"
            f" ({100 * (r['rooms_ms'] + r['ivr_ms']) / 20:.0f} % of a core at 50 ticks/s);"
            f" the rest of the process {r['other_cpu']:.0f} % of a core;"
            f" {r['ticks_run']:.0f} % of the ticks due were run",
            flush=True,
        )
        ok = r["loss_in"] <= 0 and r["loss_out"] <= 0 and r["p99"] < 5.0
        if ok:
            best = count
    print(
        f"highest load with zero loss and p99 < 5 ms: {best} participants per media process"
        f" ({100 * share:g} % dialled in, {callers} callers in the IVR besides)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="50,100,200,400,600,800")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--media", type=int, default=0, help="rooms recording with speakers")
    parser.add_argument("--nodes", type=int, default=1, help="one meeting across K processes")
    parser.add_argument("--participants", type=int, default=1000, help="with --nodes K > 1")
    parser.add_argument("--codec", default=L16, choices=sorted(PAYLOAD_TYPES))
    parser.add_argument("--inbound-share", type=float, default=0.0, help="dial-in legs' share")
    parser.add_argument("--ivr-callers", type=int, default=0, help="callers in the IVR")
    parser.add_argument(
        "--ivr-own-timers", action="store_true", help="IVR prompts on a timer per call (before)"
    )
    parser.add_argument(
        "--generator-nice",
        type=int,
        default=GENERATOR_NICE,
        help="the load generators' niceness (0: as the node's)",
    )
    parser.add_argument(
        "--generator",
        default=GENERATOR,
        choices=["c", "python"],
        help="what runs the simulated phones (c: compiled with gcc at start)",
    )
    args = parser.parse_args()
    GENERATOR_NICE = args.generator_nice
    GENERATOR = args.generator
    if args.nodes > 1:
        if not args.nodes <= 10 or args.participants < args.nodes:
            parser.error("--nodes takes 2 to 10, with at least one participant per node")
        asyncio.run(run_nodes(args.nodes, args.participants, args.seconds, args.codec))
    elif args.inbound_share or args.ivr_callers or args.ivr_own_timers:
        if not 0 <= args.inbound_share <= 1 or args.ivr_callers < 0:
            parser.error("--inbound-share takes 0 to 1, --ivr-callers 0 or more")
        steps = [int(s) for s in args.steps.split(",")]
        asyncio.run(
            main_dialin(
                steps, args.seconds, args.inbound_share, args.ivr_callers, args.ivr_own_timers
            )
        )
    else:
        asyncio.run(main([int(s) for s in args.steps.split(",")], args.seconds, args.media))
