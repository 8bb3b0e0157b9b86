"""One call placed to us (issue 15, dial-in): the UAS side of an INVITE (RFC 3261 §13.3, §12.1.1).

100 at once, 180, then 200 with our SDP answer, repeated (Timer G) until the ACK arrives or
Timer H gives up. Before the 200 the caller may CANCEL (200 to the CANCEL, 487 to the INVITE);
afterwards either side may BYE. The dialog's route set is the INVITE's Record-Route in order
(an edge proxy such as Kamailio stays in the path), and its remote target the caller's Contact.
INFO with application/dtmf-relay carries keys for trunks that do not send RFC 4733 events.

It offers the same surface as an OutgoingCall (`state`, `call_id`, `status`, `hang_up`), so the
engine treats a leg the same whichever way it was set up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from telemeeting.telephony.ivr.digits import info_digit
from telemeeting.telephony.media import sdp
from telemeeting.telephony.sip.dialog import Dialog
from telemeeting.telephony.sip.leg import CallState, DialogLeg
from telemeeting.telephony.sip.message import SipRequest
from telemeeting.telephony.sip.transaction import T2
from telemeeting.telephony.sip.transport import Addr
from telemeeting.telephony.sip.ua import ALLOW, UserAgent
from telemeeting.telephony.sip.uri import NameAddr, SipUri

log = structlog.get_logger(__name__)


class IncomingCall(DialogLeg):
    def __init__(self, ua: UserAgent, invite: SipRequest, source: Addr) -> None:
        self.ua = ua
        self.invite = invite
        self.source = source
        self.call_id = invite.call_id
        self.local_tag = ua.new_tag()
        self.state = CallState.EARLY
        self.status: int | None = None
        self.remote_media: sdp.MediaDescription | None = None
        self.local_sdp = ""
        contact = invite.get("Contact")
        self.dialog = Dialog(
            call_id=self.call_id,
            local=f"{invite.get('To') or ''};tag={self.local_tag}",
            remote=invite.get("From") or "",
            remote_target=NameAddr.parse(contact).uri if contact else _source_uri(source),
            route_set=list(invite.get_all("Record-Route")),  # a UAS keeps their order
            local_cseq=0,
        )
        self.on_remote_bye: Callable[[], None] = lambda: None
        self.on_cancelled: Callable[[], None] = lambda: None
        self.on_key: Callable[[str], None] = lambda _key: None
        self.on_remote_offer: Callable[[sdp.MediaDescription], str] | None = None
        self.acked = asyncio.Event()
        self._retransmit: asyncio.Task[None] | None = None

    # what the caller said ------------------------------------------------------------------
    @property
    def caller(self) -> str:
        """The caller's number: the From URI's user part (the trunk puts the CLI there)."""
        try:
            return SipUri.parse(NameAddr.parse(self.invite.get("From") or "").uri).user
        except Exception:
            return ""

    @property
    def called(self) -> str:
        """The number dialled: the Request-URI's user part, else the To's."""
        with contextlib.suppress(Exception):
            user = SipUri.parse(self.invite.uri).user
            if user:
                return user
        with contextlib.suppress(Exception):
            return SipUri.parse(NameAddr.parse(self.invite.get("To") or "").uri).user
        return ""

    def offer(self) -> sdp.MediaDescription:
        """The caller's SDP offer; SdpError when there is none we can use."""
        body = self.invite.body
        if not body or "sdp" not in (self.invite.get("Content-Type") or "").lower():
            raise sdp.SdpError("no SDP offer")  # offers in the ACK are not supported
        media = sdp.parse(body.decode(errors="replace"))
        media.codec()
        return media

    # answering -----------------------------------------------------------------------------
    def _respond(self, status: int, reason: str, body: str = "") -> None:
        headers = [("Record-Route", rr) for rr in self.invite.get_all("Record-Route")]
        if 100 < status < 300:
            headers += [("Contact", self.ua.contact), ("Allow", ALLOW)]
        if body:
            headers.append(("Content-Type", "application/sdp"))
        tag = self.local_tag if status > 100 else None
        self.ua.reply(self.invite, self.source, status, reason, headers, body.encode(), tag)

    def trying(self) -> None:
        self._respond(100, "Trying")

    def ringing(self) -> None:
        if self.state is CallState.EARLY:
            self._respond(180, "Ringing")

    def answer(self, local_sdp: str) -> bool:
        """200 with our SDP, repeated until ACKed; False when the caller has gone already."""
        if self.state is not CallState.EARLY:
            return False
        self.local_sdp = local_sdp
        self.status = 200
        self.state = CallState.CONFIRMED
        self._respond(200, "OK", local_sdp)
        self._retransmit = asyncio.create_task(self._repeat_200(), name=f"sip-200-{self.call_id}")
        return True

    async def _repeat_200(self) -> None:
        """Timer G until the ACK; Timer H (64·T1) without one ends the call with BYE."""
        interval, waited, limit = self.ua.t1, 0.0, 64 * self.ua.t1
        while waited < limit:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.acked.wait(), interval)
                return
            if self.state is not CallState.CONFIRMED:
                return
            waited += interval
            self._respond(200, "OK", self.local_sdp)
            interval = min(interval * 2, T2)
        log.info("sip.no_ack", call_id=self.call_id)
        await self.hang_up()
        self.on_remote_bye()

    def reject(self, status: int, reason: str) -> None:
        """A final non-2xx to the INVITE (before answer)."""
        if self.state is CallState.EARLY:
            self.status = status
            self._respond(status, reason)
            self._terminate()

    # teardown ------------------------------------------------------------------------------
    async def hang_up(self) -> None:
        if self.state is CallState.EARLY:
            self.reject(480, "Temporarily Unavailable")
            return
        if self.state is not CallState.CONFIRMED:
            return
        self.state = CallState.TERMINATED
        if self._retransmit is not None and self._retransmit is not asyncio.current_task():
            self._retransmit.cancel()
        request, dest = self.dialog.request("BYE", self.ua.via(self.ua.new_branch()))
        tx = self.ua.send(request, dest)
        try:
            while tx.final is None:
                if await tx.next_response(64 * self.ua.t1) is None:
                    break
        finally:
            self._terminate()

    # the caller's requests -----------------------------------------------------------------
    def on_request(self, request: SipRequest, addr: Addr) -> None:
        method = request.method
        if method == "ACK":
            self.acked.set()
            return
        if method == "CANCEL":
            self._on_cancel(request, addr)
            return
        if method == "INVITE" and request.branch == self.invite.branch:
            return  # the INVITE again: the transport repeats a final; a provisional is enough
        if self.state is CallState.TERMINATED or not self._in_dialog(request):
            self.ua.reply(request, addr, 481, "Call/Transaction Does Not Exist")
            return
        if method == "BYE" and self._retransmit is not None:
            self._retransmit.cancel()  # no 200 repeats after the caller's BYE
        self._on_dialog_request(request, addr)

    def _on_info(self, request: SipRequest) -> None:
        """SIP INFO dtmf-relay: keys from trunks that do not send RFC 4733 events."""
        key = info_digit(request.get("Content-Type") or "", request.body)
        if key is not None:
            self.on_key(key)

    def _on_cancel(self, request: SipRequest, addr: Addr) -> None:
        if request.branch != self.invite.branch:
            self.ua.reply(request, addr, 481, "Call/Transaction Does Not Exist")
            return
        self.ua.reply(request, addr, 200, "OK")
        if self.state is CallState.EARLY:
            self.status = 487
            self._respond(487, "Request Terminated")
            self._terminate()
            self.on_cancelled()

    def _in_dialog(self, request: SipRequest) -> bool:
        from_tag = NameAddr.parse(request.get("From") or "").tag
        to_tag = NameAddr.parse(request.get("To") or "").tag
        return from_tag == self.dialog.remote_tag and to_tag == self.local_tag


def _source_uri(source: Addr) -> str:
    return f"sip:{source[0]}:{source[1]}"
