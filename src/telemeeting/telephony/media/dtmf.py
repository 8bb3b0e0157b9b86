"""RFC 4733 telephone-events: the digits of an extension sent in-band after answer.

A digit is a run of packets every 20 ms sharing the event's start timestamp with a growing
duration, the first one marked, ended by three packets with the E bit (the retransmits the RFC
asks for, since UDP may drop one). The plan is per tick so it rides the mixer's clock.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

EVENT_CODES = {
    **{str(d): d for d in range(10)},
    "*": 10,
    "#": 11,
    "A": 12,
    "B": 13,
    "C": 14,
    "D": 15,
}
_EVENT = struct.Struct("!BBH")
_TICK_UNITS = 160  # timestamp units per 20 ms at 8 kHz
VOLUME = 10  # -10 dBm0


@dataclass(frozen=True, slots=True)
class EventFrame:
    payload: bytes
    first: bool  # starts a new event: marker bit, and the event's timestamp is this tick's


def event_payload(code: int, duration: int, end: bool = False, volume: int = VOLUME) -> bytes:
    return _EVENT.pack(code, (0x80 if end else 0) | (volume & 0x3F), min(duration, 0xFFFF))


def parse_event(payload: bytes) -> tuple[int, bool, int]:
    """(event code, end flag, duration) of a telephone-event payload."""
    code, flags, duration = _EVENT.unpack_from(payload)
    return code, bool(flags & 0x80), duration


def valid_digits(digits: str) -> str:
    """The digits we can send; pauses and separators some apps put in extensions are dropped."""
    return "".join(d for d in digits.upper() if d in EVENT_CODES)


def plan(
    digits: str, delay_ticks: int, tone_ticks: int = 8, gap_ticks: int = 5
) -> Iterator[EventFrame | None]:
    """Per tick, what to send: None for a tick of silence, or an event packet."""
    yield from (None for _ in range(delay_ticks))
    tone_ticks = max(tone_ticks, 1)
    sendable = valid_digits(digits)
    for index, digit in enumerate(sendable):
        code = EVENT_CODES[digit]
        for tick in range(tone_ticks):
            yield EventFrame(event_payload(code, (tick + 1) * _TICK_UNITS), first=tick == 0)
        final = event_payload(code, tone_ticks * _TICK_UNITS, end=True)
        for _ in range(3):
            yield EventFrame(final, first=False)
        if index < len(sendable) - 1:
            yield from (None for _ in range(gap_ticks))
