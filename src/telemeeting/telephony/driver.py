"""The interface between the service layer and whatever places the calls.

The media role hands it orders (dial, hang up, mute, end a meeting; telephony/orders.py) that
the service committed with the state that asked for them; the driver reports what happened to
each leg through the sink, and the service records it. A driver never decides a leg's final
state on its own when the service ended the leg first: reports for ended legs are ignored by the
domain.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from telemeeting.domain.model import EndReason
from telemeeting.telephony.orders import DialOrder, MediaOrder

__all__ = [
    "DialOrder",
    "Driver",
    "DriverError",
    "DriverRouter",
    "HomeMoved",
    "LegReport",
    "Progress",
    "Report",
    "SpeakersReport",
]


class DriverError(RuntimeError):
    """The driver cannot work: ports taken, a media process that will not start."""


class Progress(StrEnum):
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDED = "ended"


@dataclass(frozen=True)
class LegReport:
    meeting_id: str
    leg_id: str
    progress: Progress
    at: float
    reason: EndReason | None = None


@dataclass(frozen=True)
class SpeakersReport:
    """**extension** (issue 14): the legs talking now in a meeting with speaker events; sent
    when the set changes, at most twice a second per meeting (media/vad.py)."""

    meeting_id: str
    leg_ids: tuple[str, ...]
    at: float


@dataclass(frozen=True)
class HomeMoved:
    """**issue 16**: the media process that was a meeting's home (the one recording it) died
    and the meeting goes on with another process of the server as its home. A running recording
    goes on there in a new segment, which the service makes (as after a take-over)."""

    meeting_id: str
    at: float


Report = LegReport | SpeakersReport | HomeMoved
ReportSink = Callable[[Report], Awaitable[None]]


class Driver(Protocol):
    def attach(self, sink: ReportSink) -> None:
        """Where to send leg reports; called once before any order."""

    async def dial(self, order: DialOrder) -> None: ...

    async def hang_up(self, meeting_id: str, leg_id: str) -> None:
        """Cancel a ringing leg or hang up an answered one; no report follows."""

    async def set_muted(self, meeting_id: str, leg_id: str, muted: bool) -> None: ...

    async def end_meeting(self, meeting_id: str) -> None:
        """Release everything the meeting still holds."""

    async def media(self, order: MediaOrder) -> None:
        """In-call media: the meeting's settings, recording (telephony/media/control.py)."""

    async def start(self) -> None:
        """Acquire what the driver needs (ports, processes) so that errors surface at startup."""

    async def close(self) -> None: ...


def combine_media_stats(parts: Iterable[dict[str, float]]) -> dict[str, float]:
    """Sum mixer figures of several media processes; the worst lateness is the largest."""
    total: dict[str, float] = {}
    for part in parts:
        for key, value in part.items():
            before = total.get(key, 0.0)
            total[key] = max(before, value) if key == "max_lateness" else before + value
    return total


class DriverRouter:
    """The driver of each environment (the sandbox always simulates; production dials)."""

    def __init__(self, by_env: dict[str, Driver]) -> None:
        self._by_env = by_env

    def driver(self, env: str) -> Driver:
        return self._by_env[env]

    def attach(self, sink: ReportSink) -> None:
        for driver in self._drivers():
            driver.attach(sink)

    def _drivers(self) -> list[Driver]:
        return list({id(d): d for d in self._by_env.values()}.values())

    def media_stats(self) -> dict[str, float]:
        """Mixer figures of the drivers that mix audio (the SIP media processes); {} if none."""
        parts = []
        for driver in self._drivers():
            stats = getattr(driver, "media_stats", None)
            if callable(stats):
                parts.append(stats())
        return combine_media_stats(parts)

    async def start(self) -> None:
        for driver in self._drivers():
            await driver.start()

    async def close(self) -> None:
        for driver in self._drivers():
            await driver.close()
