"""The UA's one UDP socket: parses datagrams, hands responses to their client transaction and
requests to the user agent, and repeats its answer when a request is retransmitted."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterable
from typing import cast

import structlog

from telemeeting.telephony.sip.errors import SipParseError
from telemeeting.telephony.sip.message import SipRequest, SipResponse, parse
from telemeeting.telephony.sip.transaction import T1, ClientTransaction

log = structlog.get_logger(__name__)

Addr = tuple[str, int]
RequestHandler = Callable[[SipRequest, Addr], None]

#: How long an answered request's response is kept for retransmissions (Timer J, 64·T1).
_ANSWER_KEEP = 64 * T1
_RECEIVE_BUFFER = 1 << 20


class SipTransport(asyncio.DatagramProtocol):
    def __init__(self, on_request: RequestHandler) -> None:
        self._on_request = on_request
        self._transport: asyncio.DatagramTransport | None = None
        self._transactions: dict[tuple[str, str], ClientTransaction] = {}
        self._answers: dict[tuple[str, str, str], tuple[bytes, float]] = {}

    @classmethod
    async def open(cls, host: str, port: int, on_request: RequestHandler) -> SipTransport:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: cls(on_request), local_addr=(host, port)
        )
        sock = transport.get_extra_info("socket")
        if sock is not None:  # bursts of dial-outs answer at once: don't drop them
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
        return protocol

    @property
    def local_address(self) -> Addr:
        assert self._transport is not None
        host, port = self._transport.get_extra_info("sockname")[:2]
        return host, port

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def error_received(self, exc: Exception) -> None:
        log.debug("sip.socket_error", error=str(exc))

    def close(self) -> None:
        for tx in list(self._transactions.values()):
            tx.terminate()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # sending ------------------------------------------------------------------------------
    def send_bytes(self, data: bytes, addr: Addr) -> None:
        if self._transport is not None:
            self._transport.sendto(data, addr)

    def register(self, tx: ClientTransaction) -> None:
        self._transactions[tx.key] = tx

    def unregister(self, tx: ClientTransaction) -> None:
        if self._transactions.get(tx.key) is tx:
            del self._transactions[tx.key]

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
        """Answer `request` where it came from (symmetric, like rport), and remember the answer."""
        response = SipResponse(status=status, reason=reason, body=body)
        for via in request.get_all("Via"):
            response.add("Via", via)
        response.add("From", request.get("From") or "")
        to = request.get("To") or ""
        if to_tag and ";tag=" not in to.replace(" ", ""):
            to = f"{to};tag={to_tag}"
        response.add("To", to)
        response.add("Call-ID", request.call_id)
        response.add("CSeq", request.get("CSeq") or "")
        for name, value in headers:
            response.add(name, value)
        data = response.serialize()
        if status >= 200:
            loop = asyncio.get_running_loop()
            self._answers[self._answer_key(request)] = (data, loop.time() + _ANSWER_KEEP)
        self.send_bytes(data, addr)

    @staticmethod
    def _answer_key(request: SipRequest) -> tuple[str, str, str]:
        return request.branch, request.method, request.call_id

    # receiving ----------------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: Addr) -> None:
        if not data.strip():
            return  # CRLF keep-alive
        try:
            message = parse(data)
        except SipParseError as exc:
            log.info("sip.unparseable", peer=addr, error=str(exc))
            return
        try:
            if isinstance(message, SipResponse):
                self._on_response(message)
            else:
                self._on_request_received(message, addr)
        except SipParseError as exc:
            log.info("sip.malformed", peer=addr, error=str(exc))
        except Exception:
            log.exception("sip.handler_failed", peer=addr)

    def _on_response(self, response: SipResponse) -> None:
        tx = self._transactions.get((response.branch, response.cseq[1]))
        if tx is None:
            log.debug("sip.stray_response", status=response.status, call_id=response.call_id)
            return
        tx.receive(response)

    def _on_request_received(self, request: SipRequest, addr: Addr) -> None:
        if request.method != "ACK":
            self._expire_answers()
            known = self._answers.get(self._answer_key(request))
            if known is not None:  # a retransmission: repeat our answer, do not act again
                self.send_bytes(known[0], addr)
                return
        self._on_request(request, addr)

    def _expire_answers(self) -> None:
        if len(self._answers) < 64:
            return
        now = asyncio.get_running_loop().time()
        for key in [k for k, (_, until) in self._answers.items() if until < now]:
            del self._answers[key]
