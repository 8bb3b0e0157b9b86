"""One call we place: INVITE with an SDP offer, digest retry, ringing, answer, and teardown.

`invite()` runs the setup and returns None once the call is answered and ACKed, or the reason it
ended. `hang_up()` sends CANCEL while ringing (waiting for a provisional first, as §9.1 asks)
or BYE once answered. The peer's in-dialog requests arrive through `on_request`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Callable

import structlog

from telemeeting.domain.model import EndReason
from telemeeting.telephony.media import sdp
from telemeeting.telephony.sip.dialog import Dialog
from telemeeting.telephony.sip.digest import Challenge, UnsupportedChallenge, authorization
from telemeeting.telephony.sip.leg import CallState, DialogLeg
from telemeeting.telephony.sip.message import SipRequest, SipResponse
from telemeeting.telephony.sip.reasons import reason_for_status
from telemeeting.telephony.sip.routes import Credentials
from telemeeting.telephony.sip.transaction import ClientTransaction
from telemeeting.telephony.sip.transport import Addr
from telemeeting.telephony.sip.ua import ALLOW, UserAgent
from telemeeting.telephony.sip.uri import SipUri, escape_user

log = structlog.get_logger(__name__)

#: Challenges answered per call before giving up (a second one can be a stale nonce).
_AUTH_ATTEMPTS = 2


class OutgoingCall(DialogLeg):
    def __init__(
        self,
        ua: UserAgent,
        target: str,
        caller_id: str,
        credentials: Credentials | None,
        local_sdp: str,
        *,
        on_ringing: Callable[[], None] = lambda: None,
        on_remote_offer: Callable[[sdp.MediaDescription], str] | None = None,
        on_remote_bye: Callable[[], None] = lambda: None,
    ) -> None:
        self.ua = ua
        self.target = target
        self.credentials = credentials
        self.local_sdp = local_sdp
        self.on_ringing = on_ringing
        self.on_remote_offer = on_remote_offer
        self.on_remote_bye = on_remote_bye
        self.state = CallState.CALLING
        self.call_id = ua.new_call_id()
        self.local_tag = ua.new_tag()
        user = escape_user(caller_id) if caller_id else "anonymous"
        self.from_header = f"<sip:{user}@{ua.host}>;tag={self.local_tag}"
        self.remote_media: sdp.MediaDescription | None = None
        self.early_media = False
        self.dialog: Dialog | None = None
        self.status: int | None = None  # the final status of the INVITE
        self._cseq = 0
        self._auth: list[tuple[str, str]] = []
        self._invite: ClientTransaction | None = None
        self._dest: Addr | None = None

    # setup --------------------------------------------------------------------------------
    async def invite(self, ring_timeout: float) -> EndReason | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ring_timeout
        self._dest = await _resolve(SipUri.parse(self.target).address)
        self.ua.register_call(self.call_id, self.on_request)
        attempts = 0
        while True:
            tx = self._invite = self.ua.send(self._build_invite(), self._dest)
            final = await self._await_final(tx, deadline)
            if final is None:  # the ring timeout: nobody answered
                await self._cancel()
                if self.state is CallState.CONFIRMED:
                    return None  # answered while we were cancelling
                self._terminate()
                return EndReason.NO_ANSWER
            self.status = final.status
            if final.status < 300:
                return self._confirm(final)
            if final.status in (401, 407) and self.credentials and attempts < _AUTH_ATTEMPTS:
                attempts += 1
                if self._answer_challenge(final):
                    continue
            self._terminate()
            if tx.timed_out:
                return EndReason.FAILED  # nothing came back at all: unreachable trunk
            log.info("sip.call_failed", call_id=self.call_id, status=final.status)
            return reason_for_status(final.status)

    def _build_invite(self) -> SipRequest:
        self._cseq += 1
        request = SipRequest(method="INVITE", uri=self.target)
        request.add("Via", self.ua.via(self.ua.new_branch()))
        request.add("Max-Forwards", "70")
        request.add("From", self.from_header)
        request.add("To", f"<{self.target}>")
        request.add("Call-ID", self.call_id)
        request.add("CSeq", f"{self._cseq} INVITE")
        request.add("Contact", self.ua.contact)
        request.add("Allow", ALLOW)
        for name, value in self._auth:
            request.add(name, value)
        request.add("Content-Type", "application/sdp")
        request.body = self.local_sdp.encode()
        return request

    async def _await_final(self, tx: ClientTransaction, deadline: float) -> SipResponse | None:
        loop = asyncio.get_running_loop()
        while True:
            response = await tx.next_response(max(0.0, deadline - loop.time()))
            if response is None:
                return None
            if response.status >= 200:
                return response
            if response.status > 100:
                self.state = CallState.EARLY
                self.on_ringing()
                self._take_sdp(response, early=True)

    def _answer_challenge(self, response: SipResponse) -> bool:
        self._auth = self._challenge_answer(response, "INVITE", self.target)
        return bool(self._auth)

    def _challenge_answer(
        self, response: SipResponse, method: str, uri: str
    ) -> list[tuple[str, str]]:
        """The (Proxy-)Authorization header answering a 401/407, or [] when we cannot."""
        proxy = response.status == 407
        header = response.get("Proxy-Authenticate" if proxy else "WWW-Authenticate")
        if header is None or self.credentials is None:
            return []
        try:
            challenge = Challenge.parse(header)
            value = authorization(
                challenge, method, uri, self.credentials.username, self.credentials.password
            )
        except UnsupportedChallenge as exc:
            log.warning("sip.auth_unsupported", call_id=self.call_id, error=str(exc))
            return []
        return [("Proxy-Authorization" if proxy else "Authorization", value)]

    def _take_sdp(self, response: SipResponse, early: bool) -> None:
        if not response.body or "sdp" not in (response.get("Content-Type") or "").lower():
            return
        try:
            self.remote_media = sdp.parse(response.body.decode(errors="replace"))
            self.early_media = self.early_media or early
        except sdp.SdpError as exc:
            log.info("sip.bad_sdp", call_id=self.call_id, error=str(exc))

    def _confirm(self, response: SipResponse) -> EndReason | None:
        """Answered: build the dialog and ACK the 2xx (a new transaction, to the remote target)."""
        assert self._invite is not None
        self.dialog = Dialog.from_response(self._invite.request, response)
        ack, dest = self.dialog.request("ACK", self.ua.via(self.ua.new_branch()), self._cseq)
        for name, value in self._auth:
            ack.add(name, value)
        self._invite.ack_2xx = (self.ua.send_stateless(ack, dest), dest)
        self.state = CallState.CONFIRMED
        self._take_sdp(response, early=False)
        if self.remote_media is None:
            log.info("sip.no_answer_sdp", call_id=self.call_id)
            return EndReason.FAILED  # the caller hangs up with BYE
        return None

    # teardown -----------------------------------------------------------------------------
    async def hang_up(self) -> None:
        if self.state is CallState.CONFIRMED:
            await self._bye()
        elif self.state in (CallState.CALLING, CallState.EARLY) and self._invite is not None:
            await self._cancel()
            if self.state is CallState.CONFIRMED:  # the 200 crossed our CANCEL
                await self._bye()
        self._terminate()

    async def _bye(self) -> None:
        if self.dialog is None:
            return
        self.state = CallState.TERMINATED
        auth: list[tuple[str, str]] = []
        for _ in range(_AUTH_ATTEMPTS + 1):
            request, dest = self.dialog.request("BYE", self.ua.via(self.ua.new_branch()))
            for name, value in auth:
                request.add(name, value)
            tx = self.ua.send(request, dest)
            while tx.final is None:  # Timer F ends this with a local 408 at worst
                if await tx.next_response(64 * self.ua.t1) is None:
                    return
            if tx.final.status not in (401, 407):
                return
            auth = self._challenge_answer(tx.final, "BYE", request.uri)
            if not auth:
                return

    async def _cancel(self) -> None:
        """CANCEL the INVITE and wait for its final (487, or a 200 that crossed us)."""
        tx = self._invite
        if tx is None or tx.final is not None:
            return
        limit = 64 * self.ua.t1
        # §9.1: no CANCEL before a provisional. Whatever arrives meanwhile still counts.
        if not tx.provisional:
            response = await tx.next_response(limit)
            if response is None or response.status >= 200:
                if response is not None and response.status < 300:
                    self._confirm(response)
                return
        self.ua.send(self._build_cancel(tx.request), tx.dest)
        while tx.final is None:
            response = await tx.next_response(limit)
            if response is None:
                return
        if tx.final.status < 300:
            self._confirm(tx.final)

    @staticmethod
    def _build_cancel(invite: SipRequest) -> SipRequest:
        cancel = SipRequest(method="CANCEL", uri=invite.uri)
        cancel.add("Via", invite.get("Via") or "")
        for name in ("Max-Forwards", "From", "To", "Call-ID"):
            cancel.add(name, invite.get(name) or "")
        cancel.add("CSeq", f"{invite.cseq[0]} CANCEL")
        for route in invite.get_all("Route"):
            cancel.add("Route", route)
        return cancel

    # the peer's requests ------------------------------------------------------------------
    def on_request(self, request: SipRequest, addr: Addr) -> None:
        method = request.method
        if method == "ACK":
            return
        if self.state is not CallState.CONFIRMED or not self._in_dialog(request):
            self.ua.reply(request, addr, 481, "Call/Transaction Does Not Exist")
            return
        self._on_dialog_request(request, addr)

    def _in_dialog(self, request: SipRequest) -> bool:
        from_tag = _tag(request.get("From") or "")
        return self.dialog is not None and from_tag == self.dialog.remote_tag


def _tag(header: str) -> str | None:
    for param in header.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "tag":
            return value.strip()
    return None


async def _resolve(address: Addr) -> Addr:
    host, port = address
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return address
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=2)  # SOCK_DGRAM
    return str(infos[0][4][0]), port
