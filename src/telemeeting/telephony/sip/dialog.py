"""Dialog state for a call we placed (RFC 3261 §12): who we are, who they are, where requests go.

The route set is the 2xx's Record-Route reversed; a loose router (`lr`) keeps the remote target
as Request-URI, a strict one takes the first route as Request-URI (§12.2.1.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from telemeeting.telephony.sip.message import SipRequest, SipResponse
from telemeeting.telephony.sip.uri import NameAddr, SipUri

Addr = tuple[str, int]


@dataclass
class Dialog:
    call_id: str
    local: str  # our From, with our tag
    remote: str  # their To, with their tag
    remote_target: str
    route_set: list[str] = field(default_factory=list)
    local_cseq: int = 1

    @classmethod
    def from_response(cls, invite: SipRequest, response: SipResponse) -> Dialog:
        contact = response.get("Contact")
        target = NameAddr.parse(contact).uri if contact else invite.uri
        return cls(
            call_id=invite.call_id,
            local=invite.get("From") or "",
            remote=response.get("To") or "",
            remote_target=target,
            route_set=list(reversed(response.get_all("Record-Route"))),
            local_cseq=invite.cseq[0],
        )

    @property
    def remote_tag(self) -> str | None:
        return NameAddr.parse(self.remote).tag

    def request(self, method: str, via: str, cseq: int | None = None) -> tuple[SipRequest, Addr]:
        """A new in-dialog request and the address of its next hop. Takes the next CSeq unless
        one is given (the 2xx ACK reuses the INVITE's)."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        uri, routes, hop = self._request_uri_and_routes()
        request = SipRequest(method=method, uri=uri)
        request.add("Via", via)
        request.add("Max-Forwards", "70")
        request.add("From", self.local)
        request.add("To", self.remote)
        request.add("Call-ID", self.call_id)
        request.add("CSeq", f"{cseq} {method}")
        for route in routes:
            request.add("Route", route)
        return request, SipUri.parse(hop).address

    def _request_uri_and_routes(self) -> tuple[str, list[str], str]:
        """(Request-URI, Route headers, next hop URI)."""
        if not self.route_set:
            return self.remote_target, [], self.remote_target
        first = NameAddr.parse(self.route_set[0])
        if "lr" in SipUri.parse(first.uri).params:
            return self.remote_target, list(self.route_set), first.uri
        # a strict router is the Request-URI, and the request goes to it
        return first.uri, [*self.route_set[1:], f"<{self.remote_target}>"], first.uri
