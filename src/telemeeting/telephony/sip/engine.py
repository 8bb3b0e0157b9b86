"""The SIP media engine: the `Driver` that really places calls, in whichever process runs it.

It owns one SIP socket, one RTP socket per leg and one 20 ms mixing clock for all its meetings.
Reports go out in order through one queue; after the service hangs a leg up, nothing more is
reported for it (the driver contract). Run it inside a media node (node.py), not next to HTTP.

Dial-in (issue 15): an INVITE from a trusted source to a configured dial-in number is answered
and runs the IVR (telephony/ivr); once the service admits the caller, the call becomes a leg like
a dialled one (mute, hold, kick, RTP timeout, the meeting's end), reported answered when it joins.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog

from telemeeting.domain.model import EndReason
from telemeeting.telephony.dialin import REFUSED, Admission, AdmitRequest, Admitter
from telemeeting.telephony.driver import (
    DialOrder,
    LegReport,
    Progress,
    Report,
    ReportSink,
    SpeakersReport,
)
from telemeeting.telephony.ivr.machine import SILENCE_SECONDS, Ivr, Prompt, Verdict
from telemeeting.telephony.ivr.session import IvrSession, Samples
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
from telemeeting.telephony.sip.dialog import Dialog
from telemeeting.telephony.sip.inbound import IncomingCall
from telemeeting.telephony.sip.message import SipRequest
from telemeeting.telephony.sip.routes import RouteSettings, RouteTable
from telemeeting.telephony.sip.transaction import T1
from telemeeting.telephony.sip.transport import Addr
from telemeeting.telephony.sip.ua import UserAgent, trusted_networks
from telemeeting.telephony.sip.uac import CallState, OutgoingCall
from telemeeting.wire.environments import PRODUCTION

log = structlog.get_logger(__name__)

#: How often legs are checked for RTP silence.
_WATCH_SECONDS = 0.5
#: How long close() waits for BYEs and CANCELs to be answered.
_CLOSE_SECONDS = 5.0
#: A dial-in caller's number as the leg's phone; anything else (withheld, a name) is "".
_CALLER = re.compile(r"\+?[0-9]{1,32}")


@dataclass(eq=False)
class _Leg:
    order: DialOrder
    task: asyncio.Task[None] | None = None
    call: OutgoingCall | IncomingCall | None = None
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
        dialin: Iterable[Any] = (),
        trusted_sources: Iterable[str] = (),
        ivr_prompts: Mapping[str, str] | None = None,
        dialin_answer_seconds: float = 0.2,
        ivr_silence_seconds: float = SILENCE_SECONDS,
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
        self._ua = UserAgent(local_host, local_port, t1, trusted_networks(trusted_sources))
        #: Dial-in numbers → the meeting number each is bound to ("" for the IVR's question).
        self._dialin = {
            str(_field(entry, "number")): str(_field(entry, "meid") or "") for entry in dialin
        }
        if self._dialin:
            self._ua.on_invite = self._on_invite
        self._prompt_files = dict(ivr_prompts or {})
        self._prompts: dict[Prompt, Samples] = {}
        self.dialin_answer_seconds = dialin_answer_seconds
        self.ivr_silence_seconds = ivr_silence_seconds
        self._admitter: Admitter | None = None
        self._inbound: set[asyncio.Task[None]] = set()
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
        #: Told (meeting, leg, joined) when a member of a meeting linked to other media nodes
        #: joins or leaves, so that those nodes beep to their own members (issue 16).
        self.on_presence: Callable[[str, str, bool], None] | None = None
        #: Told (meeting, leg, dialog fields) when a call is answered, so that if this process
        #: dies another one of the server can end the call with a BYE (issue 16).
        self.on_dialog: Callable[[str, str, dict[str, Any]], None] | None = None
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
            dialin=settings.dialin,
            trusted_sources=settings.trusted_sources,
            **options,
        )

    @property
    def sip_port(self) -> int:
        return self._ua.port

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._load_prompts()
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
        self.cascades.close_meeting(meeting_id)  # first: the peers end too, nobody to tell
        for leg in [leg for leg in self._legs.values() if leg.order.meeting_id == meeting_id]:
            await self.hang_up(meeting_id, leg.order.leg_id)
        self._joined.discard(meeting_id)
        self.control.end_meeting(meeting_id)

    async def open_cascade(self, order: OpenCascade) -> CascadeEndpoint:
        """Reserve (and, given the peer's end, connect) a link of a meeting to another media
        node; this node's end, for the peer (media/cascade_control.py)."""
        await self.start()
        return await self.cascades.open(order)

    async def close_cascade(self, order: CloseCascade) -> None:
        self.cascades.close(order)

    def peer_presence(self, meeting_id: str, leg_id: str, joined: bool) -> None:
        """A member of the meeting joined or left on another media node: this node's members
        hear the beep the meeting wants (the links carry voices only)."""
        self.conference.announce(meeting_id, leg_id, joined)

    def release_dialog(self, fields: dict[str, Any]) -> None:
        """Another media process of this server died with this call up: end it with a BYE from
        here (its dialog is all a BYE needs; the answer, or none, changes nothing)."""
        dialog = Dialog(**fields)
        request, dest = dialog.request("BYE", self._ua.via(self._ua.new_branch()))
        task = asyncio.create_task(self._finish_bye(request, dest), name="sip-release-bye")
        self._teardowns.add(task)
        task.add_done_callback(self._teardowns.discard)

    async def _finish_bye(self, request: SipRequest, dest: Addr) -> None:
        tx = self._ua.send(request, dest)
        while tx.final is None:  # Timer F ends it with a local 408 at worst
            if await tx.next_response(64 * self._ua.t1) is None:
                return

    def _tell_presence(self, meeting_id: str, leg_id: str, joined: bool) -> None:
        if self.on_presence is not None and meeting_id in self.conference.links:
            self.on_presence(meeting_id, leg_id, joined)

    async def media(self, order: MediaOrder) -> None:
        await self.start()
        self.control.apply(order)

    async def close(self) -> None:
        for task in list(self._inbound):  # callers still in the IVR are released
            task.cancel()
        if self._inbound:
            await asyncio.wait(self._inbound, timeout=_CLOSE_SECONDS)
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
            "cascade_links": len(self.cascades),
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
        dialog = getattr(leg.call, "dialog", None)
        if self.on_dialog is not None and dialog is not None:
            self.on_dialog(leg.order.meeting_id, leg.order.leg_id, dict(vars(dialog)))
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
        self._tell_presence(leg.order.meeting_id, leg.order.leg_id, True)

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

    def end_with_creator(self, meeting_id: str) -> None:
        """The creator of a meeting that spans nodes left from another node: this node's legs
        end as they would have had the creator been here (会议结束)."""
        media = self.conference.media.get(meeting_id)
        if media is not None and media.end_on_creator_leave:
            self._end_others(meeting_id)

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

    def _spawn_teardown(self, call: OutgoingCall | IncomingCall) -> None:
        task = asyncio.create_task(call.hang_up(), name=f"sip-teardown-{call.call_id}")
        self._teardowns.add(task)
        task.add_done_callback(self._teardowns.discard)

    def _release(self, leg: _Leg) -> None:
        if self._legs.get(leg.order.leg_id) is leg:
            del self._legs[leg.order.leg_id]
        joined = leg.member is not None and leg.member.joined
        self.conference.remove(leg.order.meeting_id, leg.order.leg_id)
        leg.member = None
        if joined:
            self._tell_presence(leg.order.meeting_id, leg.order.leg_id, False)
        if leg.stream is not None:
            leg.stream.close()
        if leg.port is not None:
            self._ports.release(leg.port)
            leg.port = None
        meeting_id = leg.order.meeting_id
        if (
            meeting_id in self._joined
            and meeting_id not in self.conference.links
            and not any(other.order.meeting_id == meeting_id for other in self._legs.values())
        ):
            # The last call of a meeting someone joined is over: the meeting ends (empty) and
            # no EndMeeting order follows such an end, so its recording is finished here. A
            # meeting linked to other nodes may still have members there: the driver that
            # placed it ends it on every node once its last leg anywhere is over (issue 16).
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

    # dial-in (issue 15) ----------------------------------------------------------------------
    def set_admitter(self, admitter: Admitter) -> None:
        """Who decides whether a dial-in caller joins (the service, or a test)."""
        self._admitter = admitter

    def _load_prompts(self) -> None:
        for name, path in self._prompt_files.items():
            try:
                self._prompts[Prompt(name)] = np.fromfile(path, dtype="<i2")
            except (OSError, ValueError):
                log.warning("sip.ivr_prompt_unreadable", prompt=name, path=path)

    def _on_invite(self, request: SipRequest, addr: Addr) -> None:
        """A new INVITE from a trusted source (the UA refused the others with 403)."""
        call = IncomingCall(self._ua, request, addr)
        if call.called not in self._dialin:
            log.info("sip.dialin_unknown_number", called=call.called[:32], peer=addr[0])
            self._ua.reply(request, addr, 404, "Not Found", to_tag=self._ua.new_tag())
            return
        try:
            offer = call.offer()
        except sdp.SdpError as exc:
            log.info("sip.dialin_bad_offer", call_id=call.call_id, error=str(exc))
            self._ua.reply(request, addr, 488, "Not Acceptable Here", to_tag=self._ua.new_tag())
            return
        self._ua.register_call(call.call_id, call.on_request)
        call.trying()
        task = asyncio.create_task(self._serve_inbound(call, offer), name=f"sip-in-{call.call_id}")
        self._inbound.add(task)
        task.add_done_callback(self._inbound.discard)

    async def _serve_inbound(self, call: IncomingCall, offer: sdp.MediaDescription) -> None:
        """Answer, run the IVR, and join the admitted caller to the meeting."""
        me = asyncio.current_task()
        assert me is not None
        call.on_cancelled = call.on_remote_bye = lambda: _cancel(me)
        stream: RtpStream | None = None
        port: int | None = None
        leg: _Leg | None = None
        caller = call.caller if _CALLER.fullmatch(call.caller) else ""
        try:
            _, bound, port = await self._ports.bind(self.local_host, RtpStream)
            stream = bound
            self._point_stream(stream, offer)
            session = random.getrandbits(31)
            local_port = port
            call.on_remote_offer = lambda again: self._answer_offer(
                bound, local_port, session, again
            )
            call.ringing()
            await asyncio.sleep(self.dialin_answer_seconds)
            if not call.answer(sdp.answer(self.local_host, port, session, 1, offer)):
                return
            log.info("sip.dialin_answered", call_id=call.call_id, called=call.called)
            ivr = Ivr(self._dialin[call.called])

            async def admit(meid: str, pin: str) -> Admission:
                return await self._admit(AdmitRequest(meid, pin, caller, call.called))

            admission = await IvrSession(
                call,
                stream,
                ivr,
                self._prompts,
                admit,
                self.ivr_silence_seconds,
                clock=self.conference,  # the prompts ride the mixing clock
            ).run()
            if admission is None:
                log.info("sip.dialin_released", call_id=call.call_id, tries=ivr.tries)
                return
            order = DialOrder(
                admission.meeting_id, admission.leg_id, caller, "", caller, PRODUCTION
            )
            leg = _Leg(order, task=me, call=call, stream=stream, port=port, rang=True)
            leg.muted = admission.muted
            stream = None
            port = None
            self._legs[order.leg_id] = leg
            call.on_remote_bye = lambda: self._on_remote_bye(leg)
            if call.state is not CallState.CONFIRMED:  # gone while the service admitted them
                self._end(leg, EndReason.NORMAL)
                return
            await self._answered(leg)
        except asyncio.CancelledError:
            if leg is None:
                log.info("sip.dialin_caller_left", call_id=call.call_id)
        except Exception:
            log.exception("sip.dialin_failed", call_id=call.call_id)
            if leg is not None:
                self._end(leg, EndReason.FAILED)
        finally:
            if leg is None and call.state is not CallState.TERMINATED:
                self._spawn_teardown(call)
            if stream is not None:
                stream.close()
            if port is not None:
                self._ports.release(port)

    def _answer_offer(
        self, stream: RtpStream, port: int, session: int, offer: sdp.MediaDescription
    ) -> str:
        self._point_stream(stream, offer)
        return sdp.answer(self.local_host, port, session, 2, offer)

    async def _admit(self, request: AdmitRequest) -> Admission:
        if self._admitter is None:
            return REFUSED
        admission = await self._admitter(request)
        if admission.verdict is Verdict.ADMITTED and not admission.leg_id:
            return REFUSED
        return admission


def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()


def _field(entry: Any, name: str) -> Any:
    return entry.get(name) if isinstance(entry, dict) else getattr(entry, name, "")
