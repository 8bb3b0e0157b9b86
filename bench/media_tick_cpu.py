"""CPU time of one media tick (`Conference.tick`) with N real RTP legs, side by side across
git revisions.

Each leg is a real `RtpStream` on a bound UDP socket, exactly as a call has; its phone is a
plain socket in the same process. Every tick, each phone sends one PCMU frame (not timed), then
the tick runs (timed: receive, jitter buffer, decode, N-1 mix, encode, send) and the phones'
frames are read back (not timed). The figure is the thread's CPU time (`time.thread_time`), not
wall time, so the other programs sharing the machine barely move it; revisions are measured in
alternating rounds, each in a fresh process, so that what drift remains hits them alike.

    python bench/media_tick_cpu.py [--participants 500] [--rooms 1] [--ticks 400] [--rounds 3]
        [--rev 7ece0c8 ...]

`--rev` adds revisions to compare with the working tree (their `src/` is exported with
`git archive` into a temporary directory); the working tree is always measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
SKIP = 20  # the first ticks warm caches and numpy


async def _measure(participants: int, rooms: int, ticks: int) -> list[float]:
    """Per-tick CPU times (seconds) of a conference of `participants` legs in `rooms` rooms."""
    import numpy as np

    from telemeeting.telephony.media import g711
    from telemeeting.telephony.media.conference import Conference
    from telemeeting.telephony.media.ports import PortPool
    from telemeeting.telephony.media.rtp import pack
    from telemeeting.telephony.media.stream import RtpStream

    pool = PortPool(40000, 49999)
    conference = Conference()
    phones: list[tuple[socket.socket, tuple[str, int]]] = []
    streams: list[RtpStream] = []
    for index in range(participants):
        phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        phone.bind((HOST, 0))
        phone.setblocking(False)
        _, stream, port = await pool.bind(HOST, RtpStream)
        stream.remote = phone.getsockname()
        conference.add(f"room{index % rooms}", str(index), stream).joined = True
        phones.append((phone, (HOST, port)))
        streams.append(stream)
    tone = (np.sin(np.arange(160) * 2 * np.pi * 440 / 8000) * 2000).astype(np.int16)
    payload = g711.encode(g711.PCMU, tone)
    spent: list[float] = []
    for tick in range(ticks):
        for index, (phone, address) in enumerate(phones):
            phone.sendto(pack(0, tick, tick * 160, index, payload), address)
        started = time.thread_time()
        conference.tick()
        spent.append(time.thread_time() - started)
        for phone, _ in phones:
            try:
                while True:
                    phone.recv(2048)
            except BlockingIOError:
                pass
        await asyncio.sleep(0)
    received = sum(s.rx_packets for s in streams)
    if received != participants * ticks or sum(s.tx_packets for s in streams) != received:
        raise RuntimeError(f"packets lost in the loopback harness: {received}")
    for stream in streams:
        stream.close()
    for phone, _ in phones:
        phone.close()
    return spent[SKIP:]


def _worker(args: argparse.Namespace) -> None:
    spent = asyncio.run(_measure(args.participants, args.rooms, args.ticks))
    print(json.dumps(spent))


def _export(rev: str, into: Path) -> Path:
    """`rev`'s src/ in a directory of its own."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=500)
    parser.add_argument("--rooms", type=int, default=1, help="rooms the legs are spread over")
    parser.add_argument("--ticks", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rev", action="append", default=[], help="a revision to compare")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    with tempfile.TemporaryDirectory(prefix="media-tick-cpu-") as scratch:
        sources = {"working tree": ROOT / "src"}
        for rev in args.rev:
            directory = Path(scratch) / rev.replace("/", "_")
            directory.mkdir()
            sources[rev] = _export(rev, directory)
        print(
            f"CPU time of one tick: {args.participants} RTP legs in {args.rooms} room(s),"
            f" {args.ticks - SKIP} ticks a round, {args.rounds} alternating round(s) per source"
        )
        results: dict[str, list[float]] = {name: [] for name in sources}
        for _ in range(args.rounds):
            for name, src in sources.items():
                env = {**os.environ, "PYTHONPATH": str(src)}
                command = [
                    sys.executable,
                    __file__,
                    "--worker",
                    f"--participants={args.participants}",
                    f"--rooms={args.rooms}",
                    f"--ticks={args.ticks}",
                ]
                out = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
                spent = json.loads(out.stdout)
                results[name].extend(spent)
                print(f"  {name:>14}: mean {1000 * statistics.fmean(spent):.3f} ms", flush=True)
        print("source            mean ms   p50 ms   p90 ms   µs per leg   % of a core at 50/s")
        for name, spent in results.items():
            ms = sorted(1000 * x for x in spent)
            mean = statistics.fmean(ms)
            print(
                f"{name:>14} {mean:9.3f} {statistics.median(ms):8.3f}"
                f" {ms[int(len(ms) * 0.9)]:8.3f} {1000 * mean / args.participants:12.2f}"
                f" {mean * 5:16.1f}"
            )


if __name__ == "__main__":
    main()
