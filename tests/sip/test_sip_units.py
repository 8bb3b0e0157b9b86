"""Unit tests of the SIP pieces: messages, URIs, digest, dialogs, routes, transactions, and the
user agent's answers to requests outside any dialog."""

from __future__ import annotations

import asyncio
import socket

import pytest

from telemeeting.domain.model import EndReason
from telemeeting.telephony.sip import digest
from telemeeting.telephony.sip.dialog import Dialog
from telemeeting.telephony.sip.errors import SipParseError
from telemeeting.telephony.sip.message import SipRequest, SipResponse, parse, split_list
from telemeeting.telephony.sip.reasons import reason_for_status
from telemeeting.telephony.sip.routes import RouteTable
from telemeeting.telephony.sip.transaction import ClientTransaction
from telemeeting.telephony.sip.ua import UserAgent
from telemeeting.telephony.sip.uri import NameAddr, SipUri, escape_user
from tests.sip.conftest import Route

RESPONSE = (
    b"SIP/2.0 200 OK\r\n"
    b"v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc;rport=5060, SIP/2.0/UDP 10.0.0.1\r\n"
    b"f: <sip:a@x>;tag=1\r\n"
    b't: "Bob, Jr" <sip:b@y>;tag=2\r\n'
    b"i: call-1\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Record-Route: <sip:p1;lr>, <sip:p2;lr>\r\n"
    b"Record-Route: <sip:p3;lr>\r\n"
    b"Contact: <sip:b@10.0.0.9:5070>\r\n"
    b"Subject: folded\r\n  line\r\n"
    b"l: 4\r\n\r\nbodyEXTRA"
)


def test_parse_response_with_compact_folded_and_list_headers():
    message = parse(RESPONSE)
    assert isinstance(message, SipResponse)
    assert (message.status, message.reason) == (200, "OK")
    assert message.branch == "z9hG4bKabc"
    assert message.cseq == (7, "INVITE") and message.call_id == "call-1"
    assert message.get_all("Record-Route") == ["<sip:p1;lr>", "<sip:p2;lr>", "<sip:p3;lr>"]
    assert len(message.get_all("Via")) == 2
    assert message.get("Subject") == "folded line"
    assert message.body == b"body"  # Content-Length wins over trailing bytes
    assert NameAddr.parse(message.get("To") or "").display == "Bob, Jr"


def test_request_serialize_round_trip():
    request = SipRequest(method="BYE", uri="sip:b@10.0.0.9:5070")
    request.add("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx")
    request.add("call-id", "c1")
    request.add("CSeq", "2 BYE")
    request.body = b"hi"
    data = request.serialize()
    assert data.startswith(b"BYE sip:b@10.0.0.9:5070 SIP/2.0\r\n")
    assert b"Call-ID: c1\r\n" in data and data.endswith(b"Content-Length: 2\r\n\r\nhi")
    again = parse(data)
    assert isinstance(again, SipRequest) and again.method == "BYE" and again.body == b"hi"


@pytest.mark.parametrize(
    "data", [b"", b"GARBAGE\r\n\r\n", b"INVITE sip:x SIP/3.0\r\n\r\n", b"SIP/2.0 abc X\r\n\r\n"]
)
def test_parse_rejects_garbage(data):
    with pytest.raises(SipParseError):
        parse(data)


def test_split_list_respects_quotes_and_brackets():
    assert split_list('"a, b" <sip:x;p=1,2>, <sip:y>') == ['"a, b" <sip:x;p=1,2>', "<sip:y>"]


def test_uri_and_name_addr():
    uri = SipUri.parse("sip:1380@192.0.2.10:5070;transport=udp;lr")
    assert (uri.user, uri.host, uri.port, uri.address) == (
        "1380",
        "192.0.2.10",
        5070,
        ("192.0.2.10", 5070),
    )
    assert "lr" in uri.params and str(uri) == "sip:1380@192.0.2.10:5070;transport=udp;lr"
    assert SipUri.parse("sip:trunk.example").address == ("trunk.example", 5060)
    assert SipUri.parse("sip:u@[::1]:5062").address == ("::1", 5062)
    bare = NameAddr.parse("sip:a@b;tag=9")
    assert (bare.uri, bare.tag) == ("sip:a@b", "9")
    with pytest.raises(SipParseError):
        SipUri.parse("tel:+86123")


def test_digest_rfc2617_vector():
    challenge = digest.Challenge.parse(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert challenge.qop == ("auth", "auth-int")
    value = digest.response_digest(
        challenge, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", "0a4f113b", 1
    )
    assert value == "6629fae49393a05397450978507c4ef1"
    header = digest.authorization(
        challenge, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", "0a4f113b"
    )
    params = digest.parse_auth_params(header.removeprefix("Digest "))
    assert params["response"] == value and params["nc"] == "00000001" and params["qop"] == "auth"
    assert params["opaque"] == challenge.opaque


def test_digest_without_qop_and_unsupported():
    challenge = digest.Challenge.parse('Digest realm="r", nonce="n"')
    # RFC 2069 form: MD5(HA1:nonce:HA2)
    import hashlib

    md5 = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731
    expected = md5(f"{md5('u:r:p')}:n:{md5('INVITE:sip:x')}")
    assert digest.response_digest(challenge, "INVITE", "sip:x", "u", "p") == expected
    assert "qop" not in digest.authorization(challenge, "INVITE", "sip:x", "u", "p")
    with pytest.raises(digest.UnsupportedChallenge):
        digest.Challenge.parse('Basic realm="r"')
    sha = digest.Challenge.parse('Digest realm="r", nonce="n", algorithm=SHA-256')
    with pytest.raises(digest.UnsupportedChallenge):
        digest.response_digest(sha, "INVITE", "sip:x", "u", "p")


def _invite_and_ok(record_route: list[str]) -> tuple[SipRequest, SipResponse]:
    invite = SipRequest(method="INVITE", uri="sip:1380@192.0.2.10")
    invite.add("From", "<sip:me@127.0.0.1>;tag=ours")
    invite.add("To", "<sip:1380@192.0.2.10>")
    invite.add("Call-ID", "c9")
    invite.add("CSeq", "2 INVITE")
    ok = SipResponse(status=200, reason="OK")
    ok.add("To", "<sip:1380@192.0.2.10>;tag=theirs")
    ok.add("Contact", "<sip:gw@192.0.2.20:5080>")
    for value in record_route:
        ok.add("Record-Route", value)
    return invite, ok


def test_dialog_loose_routing_uses_reversed_record_route():
    invite, ok = _invite_and_ok(["<sip:p2.example;lr>, <sip:192.0.2.1:5066;lr>"])
    dialog = Dialog.from_response(invite, ok)
    assert dialog.remote_tag == "theirs"
    request, hop = dialog.request("BYE", "SIP/2.0/UDP me;branch=z9hG4bK1")
    assert request.uri == "sip:gw@192.0.2.20:5080"
    assert request.get_all("Route") == ["<sip:192.0.2.1:5066;lr>", "<sip:p2.example;lr>"]
    assert hop == ("192.0.2.1", 5066) and request.cseq == (3, "BYE")
    ack, _ = dialog.request("ACK", "SIP/2.0/UDP me;branch=z9hG4bK2", cseq=2)
    assert ack.cseq == (2, "ACK") and dialog.local_cseq == 3


def test_dialog_strict_route_and_no_route():
    invite, ok = _invite_and_ok(["<sip:192.0.2.1:5066>"])
    request, hop = Dialog.from_response(invite, ok).request("BYE", "v")
    assert request.uri == "sip:192.0.2.1:5066" and hop == ("192.0.2.1", 5066)
    assert request.get_all("Route") == ["<sip:gw@192.0.2.20:5080>"]
    invite, ok = _invite_and_ok([])
    request, hop = Dialog.from_response(invite, ok).request("BYE", "v")
    assert hop == ("192.0.2.20", 5080) and request.get("Route") is None


def test_routes_first_match_wins_with_credentials():
    table = RouteTable(
        [
            Route(r"^1[3-9]\d{9}$", "sip:{number}@192.0.2.10:5060", "alice", "pw"),
            Route(r".*", "sip:{number}@pbx"),
        ]
    )
    mobile = table.find("13800138000")
    assert (
        mobile is not None and mobile.target_for("13800138000") == "sip:13800138000@192.0.2.10:5060"
    )
    assert mobile.credentials is not None and mobile.credentials.username == "alice"
    other = table.find("02112345678")
    assert other is not None and other.credentials is None
    assert RouteTable([]).find("1") is None


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (486, EndReason.BUSY), (600, EndReason.BUSY), (408, EndReason.NO_ANSWER),
        (480, EndReason.NO_ANSWER), (603, EndReason.DECLINED), (404, EndReason.NOT_FOUND),
        (484, EndReason.NOT_FOUND), (604, EndReason.NOT_FOUND), (500, EndReason.FAILED),
        (403, EndReason.FAILED),
    ],
)  # fmt: skip
def test_status_to_end_reason(status, reason):
    assert reason_for_status(status) is reason


class _Wire:
    """A transport stand-in that records what a transaction sends."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send_bytes(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append(data)

    def register(self, tx: ClientTransaction) -> None: ...

    def unregister(self, tx: ClientTransaction) -> None: ...


def _request(method: str) -> SipRequest:
    request = SipRequest(method=method, uri="sip:x@127.0.0.1")
    request.add("Via", "SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKt")
    request.add("From", "<sip:a@b>;tag=1")
    request.add("To", "<sip:x@127.0.0.1>")
    request.add("Call-ID", "c")
    request.add("CSeq", f"1 {method}")
    return request


def _response(status: int, method: str = "INVITE") -> SipResponse:
    response = SipResponse(status=status, reason="X")
    response.add("Via", "SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKt")
    response.add("To", "<sip:x@127.0.0.1>;tag=9")
    response.add("CSeq", f"1 {method}")
    return response


async def test_invite_transaction_timer_a_stops_on_provisional_and_acks_failure():
    wire = _Wire()
    tx = ClientTransaction(wire, _request("INVITE"), ("127.0.0.1", 1), t1=0.02)  # type: ignore[arg-type]
    tx.start()
    await asyncio.sleep(0.13)  # sends at 0, 20, 60 ms (then 140)
    assert len(wire.sent) == 3
    tx.receive(_response(180))
    await asyncio.sleep(0.2)
    assert len(wire.sent) == 3  # proceeding: no more retransmissions, no Timer B
    tx.receive(_response(486))
    tx.receive(_response(486))  # retransmitted final: ACK again
    acks = [parse(d) for d in wire.sent[3:]]
    assert [a.method for a in acks] == ["ACK", "ACK"]  # type: ignore[union-attr]
    assert acks[0].branch == "z9hG4bKt"
    assert acks[0].get("To") == "<sip:x@127.0.0.1>;tag=9"
    assert [(await tx.next_response(0)).status for _ in range(2)] == [180, 486]  # type: ignore[union-attr]
    tx.terminate()


async def test_non_invite_transaction_times_out_with_local_408():
    wire = _Wire()
    tx = ClientTransaction(wire, _request("BYE"), ("127.0.0.1", 1), t1=0.01)  # type: ignore[arg-type]
    tx.start()
    response = await tx.next_response(2)
    assert response is not None and response.status == 408 and tx.timed_out
    assert 5 <= len(wire.sent) <= 12  # T1 doubling, capped at T2


async def test_user_agent_answers_outside_dialogs():
    ua = UserAgent("127.0.0.1", 0)
    await ua.start()
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        for method, to, expected in [
            ("OPTIONS", "<sip:x@127.0.0.1>", 200),
            ("BYE", "<sip:x@127.0.0.1>;tag=zz", 481),
            ("INVITE", "<sip:x@127.0.0.1>", 403),
            ("UPDATE", "<sip:x@127.0.0.1>;tag=zz", 481),
        ]:
            request = _request(method)
            request.set("To", to)
            request.set(
                "Via", f"SIP/2.0/UDP 127.0.0.1:{sock.getsockname()[1]};branch=z9hG4bK{method}"
            )
            await loop.sock_sendto(sock, request.serialize(), ("127.0.0.1", ua.port))
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 2)
            response = parse(data)
            assert isinstance(response, SipResponse) and response.status == expected, method
            assert response.cseq[1] == method
        # a retransmitted request gets the same answer again, not a second action
        await loop.sock_sendto(sock, request.serialize(), ("127.0.0.1", ua.port))
        assert parse(await asyncio.wait_for(loop.sock_recv(sock, 4096), 2)).status == 481  # type: ignore[union-attr]
    finally:
        sock.close()
        ua.close()


@pytest.mark.parametrize(
    ("user", "escaped"),
    [
        ("13800138000", "13800138000"),
        ("+8601053189990", "+8601053189990"),
        ("*99#", "*99%23"),
        ("1@evil.example", "1%40evil.example"),
        ("1>;x=1\r\nVia: y", "1%3E%3Bx%3D1%0D%0AVia%3A%20y"),
        ("张", "%E5%BC%A0"),
    ],
)
def test_uri_user_parts_are_escaped(user: str, escaped: str) -> None:
    """RFC 3261 §25.1: what the user part may not carry is %-escaped, so a number can never
    end the URI or the header early (the API admits digits only; this is the second wall)."""
    assert escape_user(user) == escaped
    table = RouteTable([Route(".*", "sip:{number}@127.0.0.1:5070")])
    route = table.find(user)
    assert route is not None
    target = route.target_for(user)
    assert target == f"sip:{escaped}@127.0.0.1:5070"
    assert SipUri.parse(target).host == "127.0.0.1"
