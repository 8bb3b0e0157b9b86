"""The RTP load generator of bench/media_capacity.py: K simulated phones in one process, on ONE
UDP socket, as cheap as Python allows so that the media process under test, not its load, is
what the machine's cores are spent on.

Every 20 ms each phone sends one PCMU frame to its leg's port. All phones share one socket
and one packet (the same bytes for everyone each tick: a media node keys a leg by its own
port, not by the SSRC), so a tick costs one `sendto` per phone and nothing else. The node sends
each leg's mix back to that one socket; what arrives is read in a batch once a tick and counted
per phone by the source port (the leg's port), so loss is still checked both ways and per
phone: every phone's frames must reach its leg, and every leg's mix must reach its phone.

By default the sending and reading run in a small C loop (bench/_rtp_load.c, compiled with the
machine's gcc into a temporary directory when the generator starts): `sendmmsg` and
`recvmmsg` take a few system calls a tick where Python needs one per packet, and no
interpreter runs per packet. Without gcc (or with `engine="python"`) the same loop runs in
Python, about twice the CPU.

The process lowers its own priority (`nice`, 10 by default): the phones stand for machines
elsewhere, and on a machine shared with the node they should yield a core to it, not contend
for it. Frames still leave on time when there is a core to spare; if the process is held back,
it sends the frames it missed on resuming (at most 5 ticks' worth, as a phone's clock would
not run further behind), so the node sees bursts, never gaps, and nothing is counted as lost
that was not sent.

Protocol on `conn` (a multiprocessing Pipe): it sends the ports its phones listen on (the one
port, `count` times), receives the legs' ports, sends until anything arrives on `conn`
("stop"), then sends the frames sent per phone and how it ran (`Pacing`: its CPU share, and
how many of its ticks it sent late or skipped because it was held back: on a busy machine a
niced generator can be starved, and its loss figures then say more about it than about the
node); on "report" (the node has stopped sending) it reads what is still in flight and sends
the frames received per phone.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TypedDict

import numpy as np

HOST = "127.0.0.1"
TICK = 0.020
#: A phone that fell behind sends at most this many ticks' frames at once, then skips ahead.
MAX_CATCH_UP = 5
#: The receive buffer: 25,000 frames a second arrive on the one socket for 500 phones, and a
#: niced process on a busy machine may not run for a few hundred ms; this holds about a second.
_RECEIVE_BUFFER = 32 * 1024 * 1024
_SEND_BUFFER = 4 * 1024 * 1024
_SO_RCVBUFFORCE = 33  # Linux's <asm-generic/socket.h>; Python's socket module lacks the name
_HEADER = struct.Struct("!BBHII")
_SSRC = 0x7E1E7E1E


class Pacing(TypedDict):
    """How the generator ran while sending."""

    cpu: float  # % of a core
    ticks: int  # ticks due
    late: int  # sent more than a tick after they were due
    skipped: int  # not sent at all: the process was held back for more than MAX_CATCH_UP


def _frame_payload() -> bytes:
    """A 440 Hz tone at about -24 dBFS, PCMU: loud enough to be mixed, never clipping."""
    from telemeeting.telephony.media import g711

    tone = (np.sin(np.arange(160) * 2 * np.pi * 440 / 8000) * 2000).astype(np.int16)
    return g711.encode(g711.PCMU, tone)


def _build_c_loop(directory: str) -> str | None:
    """bench/_rtp_load.c compiled into `directory`, or None (no gcc, or it failed)."""
    source = Path(__file__).with_suffix(".c")
    binary = str(Path(directory) / "rtp_load")
    try:
        subprocess.run(
            ["gcc", "-O2", "-o", binary, str(source)], check=True, capture_output=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return binary


def _run_c_loop(binary: str, sock: socket.socket, ports: list[int], conn: Connection) -> None:
    """The protocol on `conn`, the phones run by the C loop (see _rtp_load.c for its own)."""
    loop = subprocess.Popen(
        [binary, str(sock.fileno())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        pass_fds=(sock.fileno(),),
        text=True,
    )
    assert loop.stdin is not None and loop.stdout is not None

    def say(line: str) -> None:
        assert loop.stdin is not None
        loop.stdin.write(line + "\n")
        loop.stdin.flush()

    def counts(name: str) -> list[int]:
        assert loop.stdout is not None
        words = loop.stdout.readline().split()
        if not words or words[0] != name:
            raise RuntimeError(f"the C load loop said {words[:3]} instead of {name!r}")
        return [int(word) for word in words[1:]]

    say(f"{len(ports)}\n{' '.join(map(str, ports))}\n{_frame_payload().hex()}")
    conn.recv()  # "stop"
    say("stop")
    sent = counts("sent")
    cpu, ticks, late, skipped = loop.stdout.readline().split()[1:]
    conn.send(
        (sent, Pacing(cpu=float(cpu), ticks=int(ticks), late=int(late), skipped=int(skipped)))
    )
    conn.recv()  # "report": the node has stopped sending
    say("report")
    conn.send(counts("received"))
    loop.wait(5)


def generator_main(conn: Connection, count: int, nice: int = 10, engine: str = "c") -> None:
    """Run `count` phones until told to stop (see the module's docstring for the protocol),
    by the C loop (`engine` "c", if gcc builds it) or by Python."""
    if nice:
        os.nice(nice)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:  # beyond net.core.rmem_max needs CAP_NET_ADMIN; else as much as that allows
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RECEIVE_BUFFER)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    conn.send([sock.getsockname()[1]] * count)
    ports: list[int] = conn.recv()
    if engine == "c":
        with tempfile.TemporaryDirectory(prefix="rtp-load-") as directory:
            binary = _build_c_loop(directory)
            if binary is not None:
                _run_c_loop(binary, sock, ports, conn)
                sock.close()
                return
    targets = [(HOST, port) for port in ports]
    phone_of = {port: index for index, port in enumerate(ports)}
    payload = _frame_payload()
    sent = [0] * count
    received = [0] * count

    def drain() -> None:
        while True:
            try:
                _, address = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            phone = phone_of.get(address[1])
            if phone is not None:
                received[phone] += 1

    sequence, due = 0, time.monotonic()
    cpu, wall = time.process_time(), time.monotonic()
    pacing = Pacing(cpu=0.0, ticks=0, late=0, skipped=0)
    while not conn.poll():
        behind = int((time.monotonic() - due) / TICK)
        if behind > MAX_CATCH_UP:  # held back for long: resume from now, as a phone would
            due += behind * TICK
            pacing["ticks"] += behind
            pacing["skipped"] += behind
        while due <= time.monotonic():
            pacing["ticks"] += 1
            pacing["late"] += time.monotonic() - due > TICK
            packet = _HEADER.pack(0x80, 0, sequence & 0xFFFF, (sequence * 160) & 0xFFFFFFFF, _SSRC)
            packet += payload
            for index, target in enumerate(targets):
                try:
                    sock.sendto(packet, target)
                except OSError:  # our own send buffer full: not the node's loss
                    continue
                sent[index] += 1
            sequence += 1
            due += TICK
        drain()
        time.sleep(max(0.0, due - time.monotonic()))
    pacing["cpu"] = 100 * (time.process_time() - cpu) / (time.monotonic() - wall)
    conn.recv()  # "stop"
    conn.send((sent, pacing))
    conn.recv()  # "report": the node has stopped sending
    time.sleep(0.2)
    drain()
    conn.send(received)
    sock.close()
