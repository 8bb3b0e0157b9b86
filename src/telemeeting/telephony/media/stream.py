"""One leg's RTP endpoint: what arrives goes into the jitter buffer, what the mixer hands us
goes out as G.711 (or as a telephone-event while an extension is being dialled)."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
from collections.abc import Callable, Iterator
from typing import cast

from telemeeting.telephony.media import g711, rtp
from telemeeting.telephony.media.dtmf import EventFrame, plan
from telemeeting.telephony.media.jitter import JitterBuffer

_TICK_UNITS = 160
_DONE = object()
_FIXED = struct.Struct("!BBH")
_TIMESTAMP = struct.Struct("!I")
_HEADER = struct.Struct("!BBHII")
_HEADER_SIZE = rtp.HEADER_SIZE
_MAX_DATAGRAM = 2048


class RtpStream(asyncio.DatagramProtocol):
    """Until it joins a conference, the event loop delivers its packets one callback each; once
    in a conference, the 20 ms tick reads the socket itself (`drain`), which saves an epoll
    wake-up and a callback per packet, the largest cost at hundreds of legs per process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.transport: asyncio.DatagramTransport | None = None
        self._sock: socket.socket | None = None
        self.remote: tuple[str, int] | None = None
        self.payload_type = g711.PCMU
        self.dtmf_payload_type: int | None = None
        self.jitter: JitterBuffer[tuple[int, bytes]] = JitterBuffer(16, 2)
        self.ssrc = random.getrandbits(32)
        self._sequence = random.getrandbits(16)
        self._timestamp = random.getrandbits(32)
        self._dtmf: Iterator[EventFrame | None] | None = None
        self._event_timestamp = 0
        self._dtmf_done: asyncio.Future[None] | None = None
        self.rx_packets = 0
        self.rx_events = 0
        self.tx_packets = 0
        self.tx_events = 0
        self.last_rx = clock()
        #: Called with (RTP timestamp, payload) for each telephone-event packet received.
        self.on_event: Callable[[int, bytes], None] | None = None

    # receiving ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """A packet delivered by the event loop (before the leg is in a conference)."""
        if self._receive(data):
            self.last_rx = self._clock()

    def _receive(self, data: bytes) -> bool:
        """Take one packet: G.711 into the jitter buffer, a telephone-event to `on_event`.
        False for anything that is not RTP. The source address is not looked at (a phone may
        send from another address than its SDP says), so the tick can read with `recv`."""
        if len(data) <= _HEADER_SIZE:
            return False
        first, second, sequence = _FIXED.unpack_from(data)
        if first == 0x80:  # the usual packet: version 2, no padding, extension or CSRC
            payload_type, payload = second & 0x7F, data[_HEADER_SIZE:]
        else:
            packet = rtp.RtpPacket.parse(data)
            if packet is None:
                return False
            payload_type, payload = packet.payload_type, packet.payload
        self.rx_packets += 1
        if payload_type == g711.PCMU or payload_type == g711.PCMA:
            self.jitter.put(sequence, (payload_type, payload))
        elif payload_type == self.dtmf_payload_type:
            self.rx_events += 1
            if self.on_event is not None:  # a dial-in caller's keys (telephony/ivr)
                self.on_event(_TIMESTAMP.unpack_from(data, 4)[0], payload)
        return True

    def adopt_socket(self, sock: socket.socket) -> None:
        """The bound socket behind `transport`, for reading and sending without the loop."""
        self._sock = sock

    def enter_room(self) -> None:
        """Joining a conference: drop early media (ringback is not for the room), then let the
        tick read the socket."""
        self.jitter.reset()
        self.start_polling()

    def start_polling(self) -> None:
        """From now on the conference tick reads this leg's packets (see `drain`)."""
        if self._sock is not None and self.transport is not None:
            # Selector datagram transports can pause (typeshed's DatagramTransport omits it).
            cast(asyncio.ReadTransport, self.transport).pause_reading()

    def drain(self, limit: int = 8) -> None:
        """Read what has arrived since the last tick (at most `limit` packets). This runs for
        every leg every tick, so it is `rtp.drain` inlined: `recv` (no address tuple to build),
        no callback per packet, and the clock read once per drain rather than per packet."""
        sock = self._sock
        if sock is None:
            return
        received = False
        for _ in range(limit):
            try:
                data = sock.recv(_MAX_DATAGRAM)
            except OSError:  # BlockingIOError (nothing more), an ICMP error: RTP is best effort
                break
            received = self._receive(data) or received
        if received:
            self.last_rx = self._clock()

    def error_received(self, exc: Exception) -> None:
        """ICMP port unreachable while the peer sets up: nothing to do, RTP is best effort."""

    def read_payload(self) -> tuple[int, bytes] | None:
        """This tick's 20 ms from the peer as (payload type, G.711 bytes), or None for silence."""
        return self.jitter.pop()

    # sending ------------------------------------------------------------------------------
    def send_extension(
        self, digits: str, delay_ticks: int, tone_ticks: int, gap_ticks: int
    ) -> asyncio.Future[None]:
        """Dial `digits` as telephone-events from the next tick on; resolves when sent."""
        self._dtmf = plan(digits, delay_ticks, tone_ticks, gap_ticks)
        self._dtmf_done = asyncio.get_running_loop().create_future()
        return self._dtmf_done

    def write_payload(self, payload: bytes | None) -> None:
        """Send this tick's frame, already encoded in our payload type (None: silence); a
        pending extension digit takes its place."""
        if self._dtmf is not None:
            step = next(self._dtmf, _DONE)
            if step is _DONE:
                self._finish_dtmf()
            elif isinstance(step, EventFrame):
                self._send_event(step)
                return
        if payload is None:
            payload = g711.silence(self.payload_type)
        self._send(self.payload_type, self._timestamp, payload, False)
        self._timestamp = (self._timestamp + _TICK_UNITS) & 0xFFFFFFFF

    def _send_event(self, step: EventFrame) -> None:
        if step.first:
            self._event_timestamp = self._timestamp
        if self.dtmf_payload_type is not None:
            self._send(self.dtmf_payload_type, self._event_timestamp, step.payload, step.first)
            self.tx_events += 1
        self._timestamp = (self._timestamp + _TICK_UNITS) & 0xFFFFFFFF

    def _finish_dtmf(self) -> None:
        self._dtmf = None
        if self._dtmf_done is not None and not self._dtmf_done.done():
            self._dtmf_done.set_result(None)

    def _send(self, payload_type: int, timestamp: int, payload: bytes, marker: bool) -> None:
        remote = self.remote
        if self.transport is None or remote is None:
            return
        packet = _HEADER.pack(
            0x80, (0x80 if marker else 0) | payload_type, self._sequence, timestamp, self.ssrc
        )
        sock = self._sock
        if sock is None:
            self.transport.sendto(packet + payload, remote)
        else:  # straight to the socket: a full send buffer drops the frame, as RTP may
            try:  # noqa: SIM105 (contextlib.suppress costs a context manager per packet)
                sock.sendto(packet + payload, remote)
            except OSError:
                pass
        self._sequence = (self._sequence + 1) & 0xFFFF
        self.tx_packets += 1

    def close(self) -> None:
        self._finish_dtmf()
        self._sock = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None
