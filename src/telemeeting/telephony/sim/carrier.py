"""A carrier that needs no phone line: deterministic by the number's last four digits (spec §8).

| ends in | behaviour |
| 0486 | busy | 0408 | rings until the ring timeout | 0603 | declines after ringing |
| 0404 | not found | else | rings `ring_seconds`, answers, stays until hung up |
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from telemeeting.domain.model import EndReason
from telemeeting.telephony.driver import DialOrder, LegReport, Progress, ReportSink

log = structlog.get_logger(__name__)

#: How long "dialling" takes before the far end rings or refuses, as a share of ring_seconds.
_SETUP_SHARE = 0.1


@dataclass
class _Leg:
    order: DialOrder
    task: asyncio.Task[None] | None = None
    answered: bool = False
    muted: bool = False
    dtmf_sent: list[str] = field(default_factory=list)


class SimulatedCarrier:
    def __init__(
        self,
        ring_seconds: float = 1.0,
        ring_timeout_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ring_seconds = ring_seconds
        self.ring_timeout_seconds = ring_timeout_seconds
        self._clock = clock
        self._sink: ReportSink | None = None
        self._legs: dict[str, _Leg] = {}

    def attach(self, sink: ReportSink) -> None:
        self._sink = sink

    async def dial(self, order: DialOrder) -> None:
        leg = _Leg(order)
        self._legs[order.leg_id] = leg
        leg.task = asyncio.create_task(self._play(leg), name=f"sim-leg-{order.leg_id}")

    async def _play(self, leg: _Leg) -> None:
        suffix = leg.order.number[-4:]
        setup = self.ring_seconds * _SETUP_SHARE
        try:
            await asyncio.sleep(setup)
            if suffix == "0486":
                return await self._end(leg, EndReason.BUSY)
            if suffix == "0404":
                return await self._end(leg, EndReason.NOT_FOUND)
            await self._report(leg, Progress.RINGING)
            if suffix == "0408" or self.ring_seconds >= self.ring_timeout_seconds:
                await asyncio.sleep(max(0.0, self.ring_timeout_seconds - setup))
                return await self._end(leg, EndReason.NO_ANSWER)
            await asyncio.sleep(self.ring_seconds)
            if suffix == "0603":
                return await self._end(leg, EndReason.DECLINED)
            leg.answered = True
            leg.dtmf_sent.extend(leg.order.extension)
            await self._report(leg, Progress.ANSWERED)
        except asyncio.CancelledError:
            raise
        except Exception:  # a report that failed must not kill the carrier
            log.exception("sim.leg_failed", leg_id=leg.order.leg_id)

    async def _end(self, leg: _Leg, reason: EndReason) -> None:
        self._legs.pop(leg.order.leg_id, None)
        await self._report(leg, Progress.ENDED, reason)

    async def _report(self, leg: _Leg, progress: Progress, reason: EndReason | None = None) -> None:
        if self._sink is None:
            return
        await self._sink(
            LegReport(leg.order.meeting_id, leg.order.leg_id, progress, self._clock(), reason)
        )

    async def hang_up(self, meeting_id: str, leg_id: str) -> None:
        leg = self._legs.pop(leg_id, None)
        if leg and leg.task and not leg.task.done() and leg.task is not asyncio.current_task():
            leg.task.cancel()

    async def set_muted(self, meeting_id: str, leg_id: str, muted: bool) -> None:
        if leg := self._legs.get(leg_id):
            leg.muted = muted

    async def end_meeting(self, meeting_id: str) -> None:
        for leg_id in [k for k, v in self._legs.items() if v.order.meeting_id == meeting_id]:
            await self.hang_up(meeting_id, leg_id)

    async def start(self) -> None:
        """Nothing to acquire: the simulator needs no ports."""

    async def close(self) -> None:
        for leg_id in list(self._legs):
            await self.hang_up("", leg_id)
