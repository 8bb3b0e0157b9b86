"""The user agent core: our identity on the wire, and the dispatch of incoming requests.

We only place calls. Requests inside one of our dialogs go to that call; out of dialog we answer
OPTIONS (trunk keep-alives) with 200, refuse new INVITEs, and say 481 to anything else.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable

import structlog

from telemeeting.telephony.sip.message import SipRequest
from telemeeting.telephony.sip.transaction import T1, ClientTransaction
from telemeeting.telephony.sip.transport import Addr, SipTransport

log = structlog.get_logger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO"
USER_AGENT = "telemeeting"

CallHandler = Callable[[SipRequest, Addr], None]


class UserAgent:
    def __init__(self, host: str, port: int, t1: float = T1) -> None:
        self.host = host
        self.port = port
        self.t1 = t1
        self.transport: SipTransport | None = None
        self._calls: dict[str, CallHandler] = {}

    async def start(self) -> None:
        self.transport = await SipTransport.open(self.host, self.port, self._dispatch)
        self.port = self.transport.local_address[1]  # port 0 picks a free one (tests)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    # identity -----------------------------------------------------------------------------
    @property
    def contact(self) -> str:
        return f"<sip:telemeeting@{self.host}:{self.port}>"

    def via(self, branch: str) -> str:
        return f"SIP/2.0/UDP {self.host}:{self.port};branch={branch};rport"

    @staticmethod
    def new_branch() -> str:
        return "z9hG4bK" + secrets.token_hex(8)  # the RFC 3261 magic cookie

    @staticmethod
    def new_tag() -> str:
        return secrets.token_hex(6)

    def new_call_id(self) -> str:
        return f"{secrets.token_hex(12)}@{self.host}"

    # requests -----------------------------------------------------------------------------
    def send(self, request: SipRequest, dest: Addr) -> ClientTransaction:
        assert self.transport is not None, "user agent not started"
        request.set("User-Agent", USER_AGENT)
        tx = ClientTransaction(self.transport, request, dest, self.t1)
        tx.start()
        return tx

    def send_stateless(self, request: SipRequest, dest: Addr) -> bytes:
        """For the 2xx ACK, which is no transaction of its own; returns the bytes to repeat."""
        assert self.transport is not None, "user agent not started"
        request.set("User-Agent", USER_AGENT)
        data = request.serialize()
        self.transport.send_bytes(data, dest)
        return data

    def register_call(self, call_id: str, handler: CallHandler) -> None:
        self._calls[call_id] = handler

    def unregister_call(self, call_id: str) -> None:
        self._calls.pop(call_id, None)

    def reply(
        self,
        request: SipRequest,
        addr: Addr,
        status: int,
        reason: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        to_tag: str | None = None,
    ) -> None:
        if self.transport is not None:
            self.transport.reply(request, addr, status, reason, headers, body, to_tag)

    def _dispatch(self, request: SipRequest, addr: Addr) -> None:
        handler = self._calls.get(request.call_id)
        if handler is not None:
            handler(request, addr)
            return
        method = request.method
        if method == "ACK":
            return
        if method == "OPTIONS":
            self.reply(
                request,
                addr,
                200,
                "OK",
                headers=[("Allow", ALLOW), ("Accept", "application/sdp")],
                to_tag=self.new_tag(),
            )
        elif method == "INVITE" and ";tag=" not in (request.get("To") or "").replace(" ", ""):
            log.info("sip.inbound_call_refused", peer=addr, uri=request.uri)
            self.reply(request, addr, 403, "Inbound Calls Not Supported", to_tag=self.new_tag())
        else:
            self.reply(request, addr, 481, "Call/Transaction Does Not Exist")
