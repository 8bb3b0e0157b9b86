"""Cascade links: one meeting's audio between two media nodes, one RTP stream each way.

A meeting that spans nodes is mixed on each node from its local members, and each node sends
every peer node one stream: its LOCAL sum (every local member who speaks; muted and held members
are not in it). What arrives from peers is added to what every local member hears, and to the
room's full mix (the recording), but never to what is sent on: with three nodes in a full mesh,
A's voice reaches C over A-C only, not again over A-B-C, so nothing echoes around the mesh.
Every member hears everyone but themselves: the local N-1 mix plus the other nodes' sums, none
of which contains a local member.

The link carries L16 (16-bit linear, network byte order, 8 kHz, 20 ms: 320 bytes a packet) by
default: a node's sum is re-encoded at every hop, and G.711 would add its quantisation noise to
the whole sum once more on the way to each phone (see docs/telephony.md, "Cascading", for the
measured figure). PCMU is available for links over thin pipes (64 kbit/s instead of 128).

Packets are accepted only from the peer's address (the port it advertised is the one it sends
from), so nothing else on the network can speak into a meeting through a link's port.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import Iterable, Mapping
from typing import cast

import numpy as np
import numpy.typing as npt

from telemeeting.telephony.media import g711, rtp
from telemeeting.telephony.media.g711 import FRAME_SAMPLES
from telemeeting.telephony.media.jitter import JitterBuffer

#: The link's codecs and their (dynamic, both ends are ours) RTP payload types.
L16 = "L16"
PCMU = "PCMU"
PAYLOAD_TYPES = {L16: 96, PCMU: g711.PCMU}
_PAYLOAD_BYTES = {L16: 2 * FRAME_SAMPLES, PCMU: FRAME_SAMPLES}
#: Frames buffered beyond this are dropped (oldest first): two nodes' clocks drift apart by
#: tens of ppm, and a link must not slowly gather latency the way a full jitter ring would.
MAX_DEPTH = 4
_FIXED = struct.Struct("!BBH")
_SILENCE = np.zeros(FRAME_SAMPLES, np.int16)

Frame = npt.NDArray[np.int16]


def encode(codec: str, frame: Frame) -> bytes:
    """One 20 ms frame of samples as the link's payload."""
    if codec == L16:
        return frame.astype(">i2").tobytes()
    return g711.encode(g711.PCMU, frame)


def decode(codec: str, payload: bytes) -> Frame:
    if codec == L16:
        return np.frombuffer(payload, ">i2").astype(np.int16)
    return g711.decode(g711.PCMU, payload)


class CascadeStream(asyncio.DatagramProtocol):
    """One end of a link. The conference tick reads the socket itself (`drain`), as it does for
    legs in a room; what it hands over goes straight out (`write_frame`)."""

    def __init__(self, codec: str = L16) -> None:
        if codec not in PAYLOAD_TYPES:
            raise ValueError(f"unknown cascade codec {codec!r}")
        self.codec = codec
        self.payload_type = PAYLOAD_TYPES[codec]
        self._size = _PAYLOAD_BYTES[codec]
        self.transport: asyncio.DatagramTransport | None = None
        self._sock: socket.socket | None = None
        #: Where the peer's end is; None until it is known (nothing is sent or accepted).
        self.remote: tuple[str, int] | None = None
        self.jitter: JitterBuffer[bytes] = JitterBuffer(16, 2)
        self.ssrc = random.getrandbits(32)
        self._sequence = random.getrandbits(16)
        self._timestamp = random.getrandbits(32)
        self.rx_packets = 0
        self.tx_packets = 0
        #: Packets refused: from another address, another payload type or another size.
        self.rx_refused = 0
        #: Frames dropped because the buffer ran too deep (the peer's clock runs fast).
        self.trimmed = 0

    # receiving ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def adopt_socket(self, sock: socket.socket) -> None:
        """The bound socket behind `transport`: the tick reads it, the loop never does."""
        self._sock = sock
        if self.transport is not None:
            cast(asyncio.ReadTransport, self.transport).pause_reading()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.remote is None or (addr[0], addr[1]) != self.remote:
            self.rx_refused += 1
            return
        if len(data) != rtp.HEADER_SIZE + self._size:
            self.rx_refused += 1
            return
        first, second, sequence = _FIXED.unpack_from(data)
        if first != 0x80 or second & 0x7F != self.payload_type:  # we never send anything else
            self.rx_refused += 1
            return
        self.rx_packets += 1
        self.jitter.put(sequence, data[rtp.HEADER_SIZE :])

    def error_received(self, exc: Exception) -> None:
        """ICMP port unreachable while the peer's end is not open yet: RTP is best effort."""

    def drain(self, limit: int = 8) -> None:
        """Read what the peer node has sent since the last tick (at most `limit` packets)."""
        rtp.drain(self._sock, self.datagram_received, limit)

    def read_frame(self) -> Frame | None:
        """This tick's 20 ms from the peer node, or None (nothing arrived: silence)."""
        while len(self.jitter) > MAX_DEPTH:
            self.jitter.pop()
            self.trimmed += 1
        payload = self.jitter.pop()
        return None if payload is None else decode(self.codec, payload)

    # sending ------------------------------------------------------------------------------
    def write_frame(self, frame: Frame) -> None:
        """Send this tick's local sum (sent even when silent: the peer's buffer stays primed)."""
        sock, remote = self._sock, self.remote
        if sock is None or remote is None:
            return
        packet = rtp.pack(
            self.payload_type, self._sequence, self._timestamp, self.ssrc, encode(self.codec, frame)
        )
        with contextlib.suppress(OSError):  # a full send buffer drops the frame, as RTP may
            sock.sendto(packet, remote)
        self._sequence = (self._sequence + 1) & 0xFFFF
        self._timestamp = (self._timestamp + FRAME_SAMPLES) & 0xFFFFFFFF
        self.tx_packets += 1

    def close(self) -> None:
        self._sock = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None


# the mixing math, used by Conference.tick ----------------------------------------------------
def gather(
    links: Mapping[str, Mapping[str, CascadeStream]], drain_limit: int = 8
) -> dict[str, npt.NDArray[np.int32]]:
    """Read every link: per room, the sum of what its peer nodes sent this tick (int32, not
    clipped: it is added to local audio before the one clip). Like the legs, a link reads one
    packet most ticks (`drain_limit` 1) and catches up now and then: the read that finds the
    socket empty costs as much as one that finds a packet."""
    peers: dict[str, npt.NDArray[np.int32]] = {}
    for room, by_peer in links.items():
        total: npt.NDArray[np.int32] | None = None
        for stream in by_peer.values():
            stream.drain(drain_limit)
            frame = stream.read_frame()
            if frame is None:
                continue
            if total is None:
                total = frame.astype(np.int32)
            else:
                total += frame
        if total is not None:
            peers[room] = total
    return peers


def send_local(links: Iterable[CascadeStream], local_sum: npt.NDArray[np.int32] | None) -> None:
    """Send a room's local sum (None: no local member speaks) to each of its peer nodes."""
    frame = _SILENCE if local_sum is None else np.clip(local_sum, -32768, 32767).astype(np.int16)
    for stream in links:
        stream.write_frame(frame)
