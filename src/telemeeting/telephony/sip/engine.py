"""The SIP media engine: the `Driver` that really places calls, in whichever process runs it.

It owns one SIP socket, one RTP socket per leg and one 20 ms mixing clock for all its meetings.
Reports go out in order through one queue; after the service hangs a leg up, nothing more is
reported for it (the driver contract). Run it inside a media node (node.py), not next to HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from telemeeting.domain.model import EndReason
from telemeeting.telephony.driver import (
    DialOrder,
    LegReport,
    Progress,
    Report,
    ReportSink,
    SpeakersReport,
)
from telemeeting.telephony.media import sdp
from telemeeting.telephony.media.cascade_control import (
    CascadeEndpoint,
    CascadeLinks,
    CloseCascade,
    OpenCascade,
)
from telemeeting.telephony.media.conference import TICK_SECONDS, Conference, Member
from telemeeting.telephony.media.control import MediaControl
from telemeeting.telephony.media.dtmf import valid_digits
from telemeeting.telephony.media.ports import PortPool
from telemeeting.telephony.media.stream import RtpStream
from telemeeting.telephony.orders import MediaOrder
from telemeeting.telephony.sip.routes import RouteSettings, RouteTable
from telemeeting.telephony.sip.transaction import T1
from telemeeting.telephony.sip.ua import UserAgent
from telemeeting.telephony.sip.uac import CallState, OutgoingCall

log = structlog.get_logger(__name__)

#: How often legs are checked for RTP silence.
_WATCH_SECONDS = 0.5
#: How long close() waits for BYEs and CANCELs to be answered.
_CLOSE_SECONDS = 5.0


@dataclass(eq=False)
class _Leg:
    order: DialOrder
    task: asyncio.Task[None] | None = None
    call: OutgoingCall | None = None
    stream: RtpStream | None = None
    port: int | None = None
    member: Member | None = None
    muted: bool = False
    rang: bool = False
    answered: bool = False
    finished: bool = False  # ended: by the peer, a failure, or the service; reports stop
    rx_before_answer: int = 0


class SipEngine:
    def __init__(
        self,
        *,
        local_host: str = "127.0.0.1",
        local_port: int = 5060,
        rtp_port_min: int = 20000,
        rtp_port_max: int = 29999,
        routes: Iterable[RouteSettings] = (),
        ring_timeout_seconds: float = 30.0,
        rtp_timeout_seconds: float = 30.0,
        extension_delay_seconds: float = 1.0,
        dtmf_tone_seconds: float = 0.16,
        dtmf_gap_seconds: float = 0.1,
        t1: float = T1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.local_host = local_host
        self.ring_timeout_seconds = ring_timeout_seconds
        self.rtp_timeout_seconds = rtp_timeout_seconds
        self.extension_delay_seconds = extension_delay_seconds
        self.dtmf_tone_seconds = dtmf_tone_seconds
        self.dtmf_gap_seconds = dtmf_gap_seconds
        self._clock = clock
        self._routes = RouteTable(routes)
        self._ports = PortPool(rtp_port_min, rtp_port_max)
        self._ua = UserAgent(local_host, local_port, t1)
        self.conference = Conference()
        self.control = MediaControl(self.conference)
        #: Links to other media nodes for meetings that span them (issue 16).
        self.cascades = CascadeLinks(self.conference, self._ports, local_host)
        self._legs: dict[str, _Leg] = {}
        #: Meetings on this node in which someone has answered (they end when they empty).
        self._joined: set[str] = set()
        self._sink: ReportSink | None = None
        self._reports: asyncio.Queue[Report] = asyncio.Queue()
        self.conference.on_speakers = self._on_speakers
        self._tasks: list[asyncio.Task[None]] = []
        self._teardowns: set[asyncio.Task[None]] = set()
        self._started = False

    @classmethod
    def from_settings(cls, settings: Any, **options: Any) -> SipEngine:
        """From config.SipSettings (or anything with its attributes)."""
        return cls(
            local_host=settings.local_host,
            local_port=settings.local_port,
            rtp_port_min=settings.rtp_port_min,
            rtp_port_max=settings.rtp_port_max,
            routes=settings.routes,
            **options,
        )

    @property
    def sip_port(self) -> int:
        return self._ua.port

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        await self._ua.start()
        self._tasks = [
            asyncio.create_task(self.conference.run(), name="sip-mixer"),
            asyncio.create_task(self._watch_rtp(), name="sip-rtp-watch"),
            asyncio.create_task(self._deliver_reports(), name="sip-reports"),
        ]
        log.info("sip.engine_started", host=self.local_host, port=self.sip_port)

    # Driver -------------------------------------------------------------------------------
    def attach(self, sink: ReportSink) -> None:
        self._sink = sink

    async def dial(self, order: DialOrder) -> None:
        await self.start()
        leg = _Leg(order)
        self._legs[order.leg_id] = leg
        leg.task = asyncio.create_task(self._place(leg), name=f"sip-leg-{order.leg_id}")

    async def hang_up(self, meeting_id: str, leg_id: str) -> None:
        leg = self._legs.get(leg_id)
        if leg is None or leg.order.meeting_id != meeting_id:
            return
        leg.finished = True
        await self._stop_task(leg)
        self._release(leg)

    async def set_muted(self, meeting_id: str, leg_id: str, muted: bool) -> None:
        leg = self._legs.get(leg_id)
        if leg is not None and leg.order.meeting_id == meeting_id:
            leg.muted = muted
            if leg.member is not None:
                leg.member.muted = muted

    async def end_meeting(self, meeting_id: str) -> None:
        for leg in [leg for leg in self._legs.values() if leg.order.meeting_id == meeting_id]:
            await self.hang_up(meeting_id, leg.order.leg_id)
        self._joined.discard(meeting_id)
        self.cascades.close_meeting(meeting_id)
        self.control.end_meeting(meeting_id)

    async def open_cascade(self, order: OpenCascade) -> CascadeEndpoint:
        """Reserve (and, given the peer's end, connect) a link of a meeting to another media
        node; this node's end, for the peer (media/cascade_control.py)."""
        await self.start()
        return await self.cascades.open(order)

    async def close_cascade(self, order: CloseCascade) -> None:
        self.cascades.close(order)

    async def media(self, order: MediaOrder) -> None:
        await self.start()
        self.control.apply(order)

    async def close(self) -> None:
        for leg in list(self._legs.values()):
            await self.hang_up(leg.order.meeting_id, leg.order.leg_id)
        self.cascades.close_all()
        await self.control.close()
        if self._teardowns:
            await asyncio.wait(self._teardowns, timeout=_CLOSE_SECONDS)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._reports.join(), 1.0)
        for task in [*self._tasks, *self._teardowns]:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._ua.close()
        self._started = False

    # introspection (tests, benchmarks, health) ---------------------------------------------
    def leg_stats(self, leg_id: str) -> dict[str, Any] | None:
        leg = self._legs.get(leg_id)
        if leg is None or leg.stream is None:
            return None
        stream = leg.stream
        return {
            "state": leg.call.state.value if leg.call else "dialing",
            "rx_packets": stream.rx_packets,
            "rx_before_answer": leg.rx_before_answer,
            "tx_packets": stream.tx_packets,
            "tx_events": stream.tx_events,
            "payload_type": stream.payload_type,
            "joined": bool(leg.member and leg.member.joined),
            "sip_status": leg.call.status if leg.call else None,
        }

    def active_legs(self) -> int:
        return len(self._legs)

    def media_stats(self) -> dict[str, float]:
        """The mixer's health, for /metrics: ticks run and late, the worst lateness, and the
        packets the jitter buffers of the calls in progress counted lost or late."""
        conference = self.conference
        streams = [leg.stream for leg in self._legs.values() if leg.stream is not None]
        return {
            "ticks": conference.ticks,
            "late_ticks": conference.late_ticks,
            "max_lateness": conference.max_lateness,
            "packets_lost": sum(stream.jitter.lost for stream in streams),
            "packets_late": sum(stream.jitter.late for stream in streams),
            "legs": len(self._legs),
        }

    # one leg ------------------------------------------------------------------------------
    async def _place(self, leg: _Leg) -> None:
        order = leg.order
        try:
            route = self._routes.find(order.number)
            if route is None:
                log.info("sip.no_route", number=order.number, leg_id=order.leg_id)
                return self._end(leg, EndReason.NOT_FOUND)
            _, stream, port = await self._ports.bind(self.local_host, RtpStream)
            leg.stream, leg.port = stream, port
            session = random.getrandbits(31)
            call = OutgoingCall(
                self._ua,
                route.target_for(order.number),
                order.caller_id,
                route.credentials,
                sdp.offer(self.local_host, port, session),
                on_ringing=lambda: self._on_ringing(leg),
                on_remote_offer=lambda offer: self._on_remote_offer(leg, offer, session),
                on_remote_bye=lambda: self._on_remote_bye(leg),
            )
            leg.call = call
            reason = await call.invite(self.ring_timeout_seconds)
            if reason is None:
                reason = self._connect_media(leg)
            if reason is not None:
                if call.state is CallState.CONFIRMED:
                    self._spawn_teardown(call)
                return self._end(leg, reason)
            await self._answered(leg)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sip.leg_failed", leg_id=order.leg_id)
            if leg.call is not None:
                self._spawn_teardown(leg.call)
            self._end(leg, EndReason.FAILED)

    def _connect_media(self, leg: _Leg) -> EndReason | None:
        assert leg.call is not None and leg.stream is not None
        media = leg.call.remote_media
        try:
            assert media is not None
            self._point_stream(leg.stream, media)
        except sdp.SdpError as exc:
            log.info("sip.unusable_answer", leg_id=leg.order.leg_id, error=str(exc))
            return EndReason.FAILED
        return None

    @staticmethod
    def _point_stream(stream: RtpStream, media: sdp.MediaDescription) -> None:
        stream.payload_type = media.codec()
        stream.dtmf_payload_type = media.dtmf_payload_type()
        stream.remote = (media.host, media.port) if media.port else None

    async def _answered(self, leg: _Leg) -> None:
        assert leg.stream is not None
        stream = leg.stream
        leg.answered = True
        self._joined.add(leg.order.meeting_id)
        leg.rx_before_answer = stream.rx_packets
        stream.last_rx = time.monotonic()
        if not leg.rang:
            self._on_ringing(leg)
        self._report(leg, Progress.ANSWERED)
        leg.member = self.conference.add(leg.order.meeting_id, leg.order.leg_id, stream)
        leg.member.muted = leg.muted
        digits = valid_digits(leg.order.extension)
        if digits:
            if stream.dtmf_payload_type is None:
                log.warning("sip.no_telephone_event", leg_id=leg.order.leg_id)
            await stream.send_extension(
                digits,
                self._ticks(self.extension_delay_seconds),
                self._ticks(self.dtmf_tone_seconds),
                self._ticks(self.dtmf_gap_seconds),
            )
        self.conference.join(leg.order.meeting_id, leg.order.leg_id)

    @staticmethod
    def _ticks(seconds: float) -> int:
        return max(0, round(seconds / TICK_SECONDS))

    def _on_ringing(self, leg: _Leg) -> None:
        if not leg.rang:
            leg.rang = True
            self._report(leg, Progress.RINGING)

    def _on_remote_offer(self, leg: _Leg, offer: sdp.MediaDescription, session: int) -> str:
        assert leg.stream is not None and leg.port is not None
        self._point_stream(leg.stream, offer)  # SdpError → 488 in the call
        return sdp.answer(self.local_host, leg.port, session, 2, offer)

    def _on_remote_bye(self, leg: _Leg) -> None:
        log.info("sip.remote_bye", leg_id=leg.order.leg_id)
        if leg.task is not None and not leg.task.done():
            leg.task.cancel()  # still sending the extension
        self._end(leg, EndReason.NORMAL)

    async def _watch_rtp(self) -> None:
        while True:
            await asyncio.sleep(_WATCH_SECONDS)
            now = time.monotonic()
            for leg in list(self._legs.values()):
                stream = leg.stream
                if leg.answered and stream and now - stream.last_rx > self.rtp_timeout_seconds:
                    log.info("sip.rtp_timeout", leg_id=leg.order.leg_id)
                    await self._stop_task(leg)
                    self._end(leg, EndReason.FAILED)

    # endings ------------------------------------------------------------------------------
    def _end(self, leg: _Leg, reason: EndReason) -> None:
        """The driver ends a leg by itself: report it (once), then free what it holds."""
        if leg.finished:
            return
        self._report(leg, Progress.ENDED, reason)
        leg.finished = True
        self._release(leg)
        if leg.answered and self.control.ends_meeting(leg.order.meeting_id, leg.order.leg_id):
            self._end_others(leg.order.meeting_id)

    def _end_others(self, meeting_id: str) -> None:
        """`endoncreatorleave`: the creator hung up, so every other leg ends (会议结束)."""
        for other in [x for x in self._legs.values() if x.order.meeting_id == meeting_id]:
            self._report(other, Progress.ENDED, EndReason.MEETING_ENDED)
            other.finished = True
            task = asyncio.create_task(self._stop_task(other), name="sip-end-with-creator")
            self._teardowns.add(task)
            task.add_done_callback(self._teardowns.discard)
            self._release(other)

    async def _stop_task(self, leg: _Leg) -> None:
        """Stop the setup task and tear the call down (CANCEL or BYE) in the background."""
        task = leg.task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if leg.call is not None and leg.call.state is not CallState.TERMINATED:
            self._spawn_teardown(leg.call)

    def _spawn_teardown(self, call: OutgoingCall) -> None:
        task = asyncio.create_task(call.hang_up(), name=f"sip-teardown-{call.call_id}")
        self._teardowns.add(task)
        task.add_done_callback(self._teardowns.discard)

    def _release(self, leg: _Leg) -> None:
        if self._legs.get(leg.order.leg_id) is leg:
            del self._legs[leg.order.leg_id]
        self.conference.remove(leg.order.meeting_id, leg.order.leg_id)
        leg.member = None
        if leg.stream is not None:
            leg.stream.close()
        if leg.port is not None:
            self._ports.release(leg.port)
            leg.port = None
        meeting_id = leg.order.meeting_id
        if meeting_id in self._joined and not any(
            other.order.meeting_id == meeting_id for other in self._legs.values()
        ):
            # The last call of a meeting someone joined is over: the meeting ends (empty) and
            # no EndMeeting order follows such an end, so its recording is finished here.
            self._joined.discard(meeting_id)
            self.control.end_meeting(meeting_id)

    # reports ------------------------------------------------------------------------------
    def _report(self, leg: _Leg, progress: Progress, reason: EndReason | None = None) -> None:
        if leg.finished:
            return
        order = leg.order
        self._reports.put_nowait(
            LegReport(order.meeting_id, order.leg_id, progress, self._clock(), reason)
        )

    def _on_speakers(self, meeting_id: str, leg_ids: tuple[str, ...]) -> None:
        self._reports.put_nowait(SpeakersReport(meeting_id, leg_ids, self._clock()))

    async def _deliver_reports(self) -> None:
        while True:
            report = await self._reports.get()
            try:
                if self._sink is not None:
                    await self._sink(report)
            except Exception:  # a failing sink must not stop the reports of other legs
                log.exception("sip.report_failed", meeting_id=report.meeting_id)
            finally:
                self._reports.task_done()
