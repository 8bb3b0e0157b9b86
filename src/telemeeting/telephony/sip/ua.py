"""The user agent core: our identity on the wire, and the dispatch of incoming requests.

Requests inside one of our dialogs go to that call; out of dialog we answer OPTIONS (trunk and
proxy keep-alives) with 200 and say 481 to anything else. A new INVITE is handed to the inbound
handler (dial-in, issue 15) only when it comes from a trusted source (`sip.trusted_sources`: the
trunk, the edge proxy); any other gets 403, and a log line at most once a minute per address so
that a scanner cannot flood the log.
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from collections.abc import Callable, Iterable

import structlog

from telemeeting.telephony.sip.message import SipRequest
from telemeeting.telephony.sip.transaction import T1, ClientTransaction
from telemeeting.telephony.sip.transport import Addr, SipTransport

log = structlog.get_logger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO"
USER_AGENT = "telemeeting"

CallHandler = Callable[[SipRequest, Addr], None]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: An untrusted address's refused INVITEs are logged once per this many seconds …
REFUSAL_LOG_SECONDS = 60.0
#: … and this many addresses are remembered (then the oldest half is forgotten).
_REFUSALS_KEPT = 4096


def trusted_networks(sources: Iterable[str]) -> list[Network]:
    """config's `trusted_sources` (validated there) as networks."""
    return [ipaddress.ip_network(source, strict=False) for source in sources]


class UserAgent:
    def __init__(
        self,
        host: str,
        port: int,
        t1: float = T1,
        trusted: Iterable[Network] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = port
        self.t1 = t1
        self.transport: SipTransport | None = None
        self._calls: dict[str, CallHandler] = {}
        self.trusted = list(trusted)
        #: New INVITEs from trusted sources go here (the engine's dial-in); None refuses them.
        self.on_invite: CallHandler | None = None
        self.refused = 0
        self._refusals: dict[str, float] = {}
        self._clock = clock

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
            if self.on_invite is not None and self.is_trusted(addr[0]):
                self.on_invite(request, addr)
                return
            self._refuse(request, addr)
        else:
            self.reply(request, addr, 481, "Call/Transaction Does Not Exist")

    def is_trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.trusted)

    def _refuse(self, request: SipRequest, addr: Addr) -> None:
        self.refused += 1
        self.reply(request, addr, 403, "Forbidden", to_tag=self.new_tag())
        now = self._clock()
        host = addr[0]
        last = self._refusals.get(host)
        if last is not None and now - last < REFUSAL_LOG_SECONDS:
            return
        if len(self._refusals) >= _REFUSALS_KEPT:
            for key in list(self._refusals)[: _REFUSALS_KEPT // 2]:
                del self._refusals[key]
        self._refusals[host] = now
        log.warning(
            "sip.inbound_call_refused",
            peer=host,
            port=addr[1],
            uri=request.uri[:128],
            refused_total=self.refused,
        )
