"""RTP packets (RFC 3550) parsed and built with one `struct` call: the hot path of every leg."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

_HEADER = struct.Struct("!BBHII")
HEADER_SIZE = _HEADER.size
VERSION = 2


@dataclass(slots=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    def serialize(self) -> bytes:
        return (
            _HEADER.pack(
                VERSION << 6,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence & 0xFFFF,
                self.timestamp & 0xFFFFFFFF,
                self.ssrc,
            )
            + self.payload
        )

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket | None:
        """The packet, or None for anything that is not RTP version 2 (e.g. RTCP or STUN)."""
        if len(data) < HEADER_SIZE:
            return None
        first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        if first >> 6 != VERSION:
            return None
        payload_type = second & 0x7F
        if 72 <= payload_type <= 76:  # RTCP multiplexed on the RTP port (RFC 5761)
            return None
        start = HEADER_SIZE + 4 * (first & 0x0F)
        if first & 0x10:  # header extension: 16-bit profile, 16-bit length in words
            if len(data) < start + 4:
                return None
            (words,) = struct.unpack_from("!H", data, start + 2)
            start += 4 + 4 * words
        end = len(data)
        if first & 0x20 and end > start:  # padding: the last byte says how much
            end -= data[-1]
        if end < start:
            return None
        return cls(payload_type, sequence, timestamp, ssrc, data[start:end], bool(second & 0x80))


def pack(
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload: bytes,
    marker: bool = False,
) -> bytes:
    """Build a packet without allocating an RtpPacket (used once per leg per tick)."""
    return (
        _HEADER.pack(
            0x80,
            (0x80 if marker else 0) | payload_type,
            sequence & 0xFFFF,
            timestamp & 0xFFFFFFFF,
            ssrc,
        )
        + payload
    )


def drain(
    sock: socket.socket | None,
    receive: Callable[[bytes, tuple[str, int]], None],
    limit: int = 8,
) -> None:
    """Hand `receive` what has arrived on a non-blocking socket, at most `limit` packets.

    The conference tick reads legs' and cascade links' sockets itself instead of the event loop
    (one pass per 20 ms instead of one callback per packet); `limit` bounds one tick's work
    when a peer floods. An ICMP error reported on the socket ends the pass: RTP is best effort.
    """
    if sock is None:
        return
    for _ in range(limit):
        try:
            data, addr = sock.recvfrom(2048)
        except OSError:  # BlockingIOError (nothing more) and InterruptedError are OSErrors too
            return
        receive(data, addr)
