"""Participants per media process: the real RTP path (RtpStream, jitter buffer, G.711, N-1 mix
on the 20 ms clock) in this process, RTP load from a separate generator process.

For each step N (5-member rooms) the generator sends 50 packets/s per participant for the
warm-up plus the measurement window, and counts what comes back. Printed per step: server CPU,
packet rates, inbound and outbound loss, tick lateness p50/p99/max; then the highest N with zero
loss and p99 < 5 ms.

With `--media K` (issue 14), K of the rooms also record (the mix to a WAV, encoded to MP3 when
the step ends, off the tick) and detect speakers, as meetings with `record` and `speakerevents`
do: what those features cost shows as the difference from a run without.

    python bench/media_capacity.py [--steps 50,100,200,400,600,800] [--seconds 5] [--media 2]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from telemeeting.telephony.media import g711
from telemeeting.telephony.media.conference import Conference
from telemeeting.telephony.media.control import MediaControl
from telemeeting.telephony.media.ports import PortPool
from telemeeting.telephony.media.rtp import pack
from telemeeting.telephony.media.stream import RtpStream
from telemeeting.telephony.orders import ConfigureMeeting, StartRecording

HOST = "127.0.0.1"
ROOM = 5
WARMUP = 1.0


# --- the load generator (a separate process) ----------------------------------------------
class _Counter(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received += 1


def generator_main(conn: Connection, count: int) -> None:
    asyncio.run(_generate(conn, count))


async def _generate(conn: Connection, count: int) -> None:
    loop = asyncio.get_running_loop()
    endpoints = [
        await loop.create_datagram_endpoint(_Counter, local_addr=(HOST, 0)) for _ in range(count)
    ]
    conn.send([t.get_extra_info("sockname")[1] for t, _ in endpoints])
    targets: list[int] = conn.recv()
    tone = (np.sin(np.arange(160) * 2 * np.pi * 440 / 8000) * 8000).astype(np.int16)
    payload = g711.encode(g711.PCMU, tone)
    stop = asyncio.Event()
    loop.add_reader(conn.fileno(), stop.set)
    sent, seq, due = 0, 0, loop.time()
    while not stop.is_set():
        for index, (transport, _) in enumerate(endpoints):
            transport.sendto(pack(0, seq, seq * 160, index, payload), (HOST, targets[index]))
        sent += count
        seq += 1
        due += 0.02
        await asyncio.sleep(max(0.0, due - loop.time()))
    loop.remove_reader(conn.fileno())
    conn.recv()  # "stop"
    conn.send(sent)
    conn.recv()  # "report": the server has stopped sending
    await asyncio.sleep(0.2)
    conn.send(sum(p.received for _, p in endpoints))
    for transport, _ in endpoints:
        transport.close()


# --- the media process under test (this one) ------------------------------------------------
async def run_step(count: int, seconds: float, media: int = 0) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    conn, child = context.Pipe()
    generator = context.Process(target=generator_main, args=(child, count), daemon=True)
    generator.start()
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
    mixer = asyncio.create_task(conference.run())
    await asyncio.sleep(WARMUP)
    conference.lateness.clear()
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    lateness = sorted(conference.lateness)
    conn.send("stop")
    sent = await loop.run_in_executor(None, conn.recv)
    await asyncio.sleep(0.2)  # the last packets in flight
    mixer.cancel()
    recorded = sum(
        m.recorder.seconds for m in conference.media.values() if m.recorder is not None
    )
    await control.close()  # the MP3s, encoded in a thread
    mp3_bytes = sum(p.stat().st_size for p in Path(workdir.name).glob("*.mp3"))
    workdir.cleanup()
    received_by_us = sum(s.rx_packets for s in streams)
    sent_by_us = sum(s.tx_packets for s in streams)
    conn.send("report")
    received_by_them = await loop.run_in_executor(None, conn.recv)
    generator.join(5)
    for stream in streams:
        stream.close()
    ms = [x * 1000 for x in lateness] or [0.0]
    return {
        "n": count,
        "cpu": 100 * cpu / wall,
        "rx_pps": received_by_us / (seconds + WARMUP),
        "tx_pps": sent_by_us / (seconds + WARMUP),
        "loss_in": 100 * (1 - received_by_us / sent) if sent else 0.0,
        "loss_out": 100 * (1 - received_by_them / sent_by_us) if sent_by_us else 0.0,
        "p50": statistics.median(ms),
        "p99": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        "max": ms[-1],
        "recorded_s": recorded,
        "mp3_kb": mp3_bytes / 1024,
        "speaker_reports": speaker_reports,
    }


async def main(steps: list[int], seconds: float, media: int = 0) -> None:
    print(f"media capacity: {ROOM}-member rooms, {seconds:g} s a step, load from a 2nd process")
    if media:
        print(f"{media} room(s) recording and detecting speakers")
    header = "    N  rooms   cpu%    rx pps    tx pps  loss in%  loss out%   p50 ms  p99 ms  max ms"
    print(header)
    best = 0
    for count in steps:
        r = await run_step(count, seconds, media)
        print(
            f"{count:5d} {count // ROOM:6d} {r['cpu']:6.1f} {r['rx_pps']:9.0f} {r['tx_pps']:9.0f}"
            f" {r['loss_in']:9.3f} {r['loss_out']:10.3f} {r['p50']:8.2f} {r['p99']:7.2f}"
            f" {r['max']:7.2f}",
            flush=True,
        )
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="50,100,200,400,600,800")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--media", type=int, default=0, help="rooms recording with speakers")
    args = parser.parse_args()
    asyncio.run(main([int(s) for s in args.steps.split(",")], args.seconds, args.media))
