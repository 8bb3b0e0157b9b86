"""A carrier that needs no phone line: deterministic by the number's last four digits (spec §8).

| ends in | behaviour |
| 0486 | busy | 0408 | rings until the ring timeout | 0603 | declines after ringing |
| 0404 | not found | else | rings `ring_seconds`, answers, stays until hung up |

Answered parties talk: each has a synthetic voice (media/synthetic.py) that goes through the same
Conference as SIP legs, so a sandbox meeting's recording holds real audio. To spare the API
process a 50 Hz mixing clock it does not need, a meeting is mixed only once it records.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from telemeeting.domain.model import EndReason
from telemeeting.telephony.driver import (
    DialOrder,
    LegReport,
    Progress,
    ReportSink,
    SpeakersReport,
)
from telemeeting.telephony.media.conference import Conference
from telemeeting.telephony.media.control import MediaControl
from telemeeting.telephony.media.synthetic import SyntheticStream
from telemeeting.telephony.orders import ConfigureMeeting, MediaOrder, StartRecording

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
        self.conference = Conference()
        self.control = MediaControl(self.conference)
        self.conference.on_speakers = self._on_speakers
        self._mixer: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

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
            if self._mixed(leg.order.meeting_id):
                self._enter(leg)
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
        if leg is not None:
            self.conference.remove(leg.order.meeting_id, leg_id)

    async def set_muted(self, meeting_id: str, leg_id: str, muted: bool) -> None:
        if leg := self._legs.get(leg_id):
            leg.muted = muted
            if member := self.conference.get(meeting_id, leg_id):
                member.muted = muted

    async def end_meeting(self, meeting_id: str) -> None:
        for leg_id in [k for k, v in self._legs.items() if v.order.meeting_id == meeting_id]:
            await self.hang_up(meeting_id, leg_id)
        self.control.end_meeting(meeting_id)

    async def media(self, order: MediaOrder) -> None:
        self.control.apply(order)
        if isinstance(order, StartRecording | ConfigureMeeting) and self._mixed(order.meeting_id):
            self._run_mixer()
            for leg in list(self._legs.values()):
                if leg.answered and leg.order.meeting_id == order.meeting_id:
                    self._enter(leg)

    # media --------------------------------------------------------------------------------
    def _mixed(self, meeting_id: str) -> bool:
        media = self.conference.media.get(meeting_id)
        return media is not None and media.needs_mixing

    def _enter(self, leg: _Leg) -> None:
        """The party starts talking into (and hearing) the meeting's mix."""
        meeting_id, leg_id = leg.order.meeting_id, leg.order.leg_id
        if self.conference.get(meeting_id, leg_id) is not None:
            return
        member = self.conference.add(meeting_id, leg_id, SyntheticStream(leg_id))
        member.muted = leg.muted
        self.conference.join(meeting_id, leg_id)
        self._run_mixer()

    def _on_speakers(self, meeting_id: str, leg_ids: tuple[str, ...]) -> None:
        report = SpeakersReport(meeting_id, leg_ids, self._clock())
        task = asyncio.create_task(self._tell(report), name="sim-speakers")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _tell(self, report: SpeakersReport) -> None:
        if self._sink is not None:
            await self._sink(report)

    def _run_mixer(self) -> None:
        if self._mixer is None or self._mixer.done():
            self._mixer = asyncio.create_task(self.conference.run(), name="sim-mixer")

    async def start(self) -> None:
        """Nothing to acquire: the simulator needs no ports."""

    async def close(self) -> None:
        for leg_id in list(self._legs):
            await self.hang_up("", leg_id)
        await self.control.close()
        if self._mixer is not None:
            self._mixer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._mixer
            self._mixer = None
