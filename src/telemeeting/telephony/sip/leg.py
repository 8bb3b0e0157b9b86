"""What a call leg does inside its dialog, whichever side set it up (RFC 3261 §12.2.2, §14.2).

An OutgoingCall (we sent the INVITE) and an IncomingCall (dial-in: the caller did) differ in
setup, but once the dialog stands they answer the peer's requests the same way: BYE ends the
call, a re-INVITE or UPDATE is a session refresh or a re-offer, OPTIONS/INFO/NOTIFY get 200 and
anything else 501. This is that one behaviour, kept in one place so the two sides cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from telemeeting.telephony.media import sdp
from telemeeting.telephony.sip.message import SipRequest
from telemeeting.telephony.sip.transport import Addr
from telemeeting.telephony.sip.ua import ALLOW, UserAgent


class CallState(Enum):
    CALLING = "calling"
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class DialogLeg:
    """The in-dialog half of a call; subclasses set these attributes in their constructors."""

    ua: UserAgent
    call_id: str
    state: CallState
    local_sdp: str
    remote_media: sdp.MediaDescription | None
    on_remote_offer: Callable[[sdp.MediaDescription], str] | None
    on_remote_bye: Callable[[], None]

    def _terminate(self) -> None:
        self.state = CallState.TERMINATED
        self.ua.unregister_call(self.call_id)

    def _on_info(self, request: SipRequest) -> None:
        """An INFO in the dialog, already answered 200 (a subclass may read keys from it)."""

    def _on_dialog_request(self, request: SipRequest, addr: Addr) -> None:
        """A request the subclass found to belong to this confirmed dialog."""
        method = request.method
        if method == "BYE":
            self.ua.reply(request, addr, 200, "OK")
            self._terminate()
            self.on_remote_bye()
        elif method == "INFO":
            self.ua.reply(request, addr, 200, "OK")
            self._on_info(request)
        elif method in ("INVITE", "UPDATE"):
            self._answer_refresh(request, addr)
        elif method in ("OPTIONS", "NOTIFY", "CANCEL"):  # a CANCEL after the 200 is moot
            self.ua.reply(request, addr, 200, "OK")
        else:
            self.ua.reply(request, addr, 501, "Not Implemented", headers=[("Allow", ALLOW)])

    def _answer_refresh(self, request: SipRequest, addr: Addr) -> None:
        """Session refresh or re-offer: 200 with our SDP (an INVITE always gets one, an UPDATE
        without an offer none); a new offer goes to `on_remote_offer` for the answer."""
        body = b""
        if request.body and "sdp" in (request.get("Content-Type") or "").lower():
            try:
                offer = sdp.parse(request.body.decode(errors="replace"))
                answer = self.on_remote_offer(offer) if self.on_remote_offer else self.local_sdp
                self.remote_media = offer
                body = answer.encode()
            except sdp.SdpError:
                self.ua.reply(request, addr, 488, "Not Acceptable Here")
                return
        elif request.method == "INVITE":
            body = self.local_sdp.encode()
        headers = [("Contact", self.ua.contact), ("Allow", ALLOW)]
        if body:
            headers.append(("Content-Type", "application/sdp"))
        self.ua.reply(request, addr, 200, "OK", headers=headers, body=body)
