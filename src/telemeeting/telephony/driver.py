"""The interface between the service layer and whatever places the calls.

The service sends orders (dial, hang up, DTMF, mute, end a meeting) after it has committed the
state that asked for them; the driver reports what happened to each leg through the sink, and the
service records it. A driver never decides a leg's final state on its own when the service ended
the leg first: reports for ended legs are ignored by the domain.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from telemeeting.domain.model import EndReason


class DriverError(RuntimeError):
    """The driver cannot work: ports taken, a media process that will not start."""


@dataclass(frozen=True)
class DialOrder:
    meeting_id: str
    leg_id: str
    number: str
    extension: str
    caller_id: str
    env: str


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


ReportSink = Callable[[LegReport], Awaitable[None]]


class Driver(Protocol):
    def attach(self, sink: ReportSink) -> None:
        """Where to send leg reports; called once before any order."""

    async def dial(self, order: DialOrder) -> None: ...

    async def hang_up(self, meeting_id: str, leg_id: str) -> None:
        """Cancel a ringing leg or hang up an answered one; no report follows."""

    async def set_muted(self, meeting_id: str, leg_id: str, muted: bool) -> None: ...

    async def end_meeting(self, meeting_id: str) -> None:
        """Release everything the meeting still holds."""

    async def start(self) -> None:
        """Acquire what the driver needs (ports, processes) so that errors surface at startup."""

    async def close(self) -> None: ...


#: How many hung-up legs and ended meetings the router remembers (see `DriverRouter`).
_TOMBSTONES = 100_000


class DriverRouter:
    """Sends each order to the driver of the app's environment, and remembers which one.

    It also remembers legs hung up and meetings ended, so that a dial order that lost a race
    with `destroyMeeting` (committed first, carried out second) is dropped instead of placing a
    call for a meeting that has already ended.
    """

    def __init__(self, by_env: dict[str, Driver]) -> None:
        self._by_env = by_env
        self._owner: dict[str, Driver] = {}
        self._gone: OrderedDict[str, None] = OrderedDict()  # leg and meeting ids

    def attach(self, sink: ReportSink) -> None:
        for driver in self._drivers():
            driver.attach(sink)

    def _bury(self, key: str) -> None:
        self._gone[key] = None
        if len(self._gone) > _TOMBSTONES:
            self._gone.popitem(last=False)

    async def dial(self, order: DialOrder) -> None:
        if order.leg_id in self._gone or order.meeting_id in self._gone:
            return
        driver = self._by_env[order.env]
        self._owner[order.meeting_id] = driver
        await driver.dial(order)

    async def hang_up(self, meeting_id: str, leg_id: str) -> None:
        self._bury(leg_id)
        if driver := self._owner.get(meeting_id):
            await driver.hang_up(meeting_id, leg_id)

    async def set_muted(self, meeting_id: str, leg_id: str, muted: bool) -> None:
        if driver := self._owner.get(meeting_id):
            await driver.set_muted(meeting_id, leg_id, muted)

    async def end_meeting(self, meeting_id: str) -> None:
        self._bury(meeting_id)
        if driver := self._owner.pop(meeting_id, None):
            await driver.end_meeting(meeting_id)

    def _drivers(self) -> list[Driver]:
        return list({id(d): d for d in self._by_env.values()}.values())

    async def start(self) -> None:
        for driver in self._drivers():
            await driver.start()

    async def close(self) -> None:
        for driver in self._drivers():
            await driver.close()
