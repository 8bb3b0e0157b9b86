"""Client transactions over UDP (RFC 3261 §17.1): retransmission, timeouts, ACK for non-2xx.

INVITE: Timer A retransmits from T1 doubling until a provisional or final arrives; Timer B
(64·T1) gives up only while nothing at all came back. A non-2xx final is ACKed here on the same
branch, every time it is retransmitted. 2xx ACKs belong to the dialog (`ack_2xx`), but the
transaction lingers so it can repeat that ACK when the 2xx is retransmitted.
Non-INVITE (BYE, CANCEL): Timer E from T1 doubling up to T2, Timer F (64·T1).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from telemeeting.telephony.sip.message import SipRequest, SipResponse

if TYPE_CHECKING:
    from telemeeting.telephony.sip.transport import Addr, SipTransport

T1 = 0.5
T2 = 4.0


class ClientTransaction:
    def __init__(
        self, transport: SipTransport, request: SipRequest, dest: Addr, t1: float = T1
    ) -> None:
        self.transport = transport
        self.request = request
        self.dest = dest
        self.method = request.method
        self.branch = request.branch
        self.t1 = t1
        self.responses: asyncio.Queue[SipResponse] = asyncio.Queue()
        self.provisional = False
        self.final: SipResponse | None = None
        self.timed_out = False
        #: The dialog's ACK for a 2xx (bytes, where), repeated if the 2xx is retransmitted.
        self.ack_2xx: tuple[bytes, Addr] | None = None
        self._data = request.serialize()
        self._interval = t1
        self._retransmit: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.branch, self.method

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport.register(self)
        self.transport.send_bytes(self._data, self.dest)
        self._retransmit = loop.call_later(self._interval, self._on_retransmit)
        self._deadline = loop.call_later(64 * self.t1, self._on_deadline)

    async def next_response(self, timeout: float | None = None) -> SipResponse | None:
        """The next response (provisional or final), or None when `timeout` passes first."""
        if not self.responses.empty():
            return self.responses.get_nowait()
        try:
            return await asyncio.wait_for(self.responses.get(), timeout)
        except TimeoutError:
            return None

    def receive(self, response: SipResponse) -> None:
        if self.final is not None:  # a retransmitted final
            if self.method == "INVITE":
                if response.status >= 300:
                    self._send_ack(response)
                elif self.ack_2xx is not None:
                    self.transport.send_bytes(*self.ack_2xx)
            return
        if response.status < 200:
            self.provisional = True
            if self.method == "INVITE":
                self._cancel_timer("_retransmit")
        else:
            self.final = response
            self._cancel_timer("_retransmit")
            self._cancel_timer("_deadline")
            if self.method == "INVITE" and response.status >= 300:
                self._send_ack(response)
            self._linger = asyncio.get_running_loop().call_later(64 * self.t1, self.terminate)
        self.responses.put_nowait(response)

    def _send_ack(self, response: SipResponse) -> None:
        """ACK for a non-2xx final: same branch and Request-URI, the response's To (§17.1.1.3)."""
        number, _ = self.request.cseq
        ack = SipRequest(method="ACK", uri=self.request.uri)
        ack.add("Via", self.request.get("Via") or "")
        for name in ("Max-Forwards", "From"):
            ack.add(name, self.request.get(name) or "")
        ack.add("To", response.get("To") or self.request.get("To") or "")
        ack.add("Call-ID", self.request.call_id)
        ack.add("CSeq", f"{number} ACK")
        for route in self.request.get_all("Route"):
            ack.add("Route", route)
        self.transport.send_bytes(ack.serialize(), self.dest)

    def _on_retransmit(self) -> None:
        if self.final is not None or (self.method == "INVITE" and self.provisional):
            return
        self.transport.send_bytes(self._data, self.dest)
        self._interval = self._interval * 2
        if self.method != "INVITE" or self.provisional:
            self._interval = min(self._interval, T2)
        self._retransmit = asyncio.get_running_loop().call_later(
            self._interval, self._on_retransmit
        )

    def _on_deadline(self) -> None:
        if self.final is not None or (self.method == "INVITE" and self.provisional):
            return  # an INVITE that is ringing waits for the TU's ring timeout instead
        self.timed_out = True
        self.final = SipResponse(status=408, reason="Request Timeout (no response)")
        self._cancel_timer("_retransmit")
        self.responses.put_nowait(self.final)
        self.terminate()

    def _cancel_timer(self, name: str) -> None:
        timer = getattr(self, name)
        if timer is not None:
            timer.cancel()
            setattr(self, name, None)

    def terminate(self) -> None:
        for name in ("_retransmit", "_deadline", "_linger"):
            self._cancel_timer(name)
        self.transport.unregister(self)
