"""Whatever arrives, the answer is the contract's envelope with a contract code: never a 500,
never a stack trace (spec §1, §3, §4). Hypothesis generates the garbage; the server is real."""

from __future__ import annotations

import base64
import json
import socket
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemeeting.wire.status import Status
from tests.servers import Api

CODES = {status.code for status in Status}
ACTIONS = [
    "createMeeting",
    "inviteJoinMeeting",
    "destroyMeeting",
    "queryMeeting",
    "muteMeetingMember",
    "kickMeetingMember",
    "queryMeetingEvents",
    "",
    "x",
]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
bodies = st.dictionaries(
    st.sampled_from(
        [
            "action",
            "appid",
            "confid",
            "parties",
            "CustomParm",
            "creator",
            "phone",
            "maxmembers",
            "bookmeeting",
            "booktime",
            "meetingname",
            "after",
            "limit",
        ]
    ),
    values,
    max_size=8,
)
FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _check(response: httpx.Response) -> None:
    assert response.status_code in (200, 404, 405), response.text
    body = response.json()
    assert list(body)[:3] == ["statusCode", "statusMsg", "requestId"]
    assert body["statusCode"] in CODES and body["statusCode"] != "-100", body
    assert "Traceback" not in response.text


@FUZZ
@given(body=bodies, action=st.sampled_from(ACTIONS))
def test_signed_requests_with_arbitrary_parameters(api: Api, body: dict, action: str) -> None:
    body = {**body, "action": action}
    if "appid" not in body:
        body["appid"] = api.tenant.sandbox_app
    reply = api.post(json.dumps(body, ensure_ascii=False))
    assert reply.http_status == 200 and reply.code in CODES and reply.code != "-100", reply.body


#: Any valid HTTP field value (RFC 9110 §5.5): visible ASCII and obs-text (0x80-0xFF), with SP
#: and HTAB only inside. Other control characters make the request itself invalid HTTP, which the
#: HTTP parser refuses before our code runs (test_an_unparseable_request_gets_a_plain_400).
field_values = st.text(
    alphabet=st.sampled_from(["\t", *map(chr, range(0x20, 0x7F)), *map(chr, range(0x80, 0x100))]),
    max_size=60,
).map(lambda text: text.strip(" \t").encode("latin-1"))


@FUZZ
@given(
    raw=st.binary(max_size=300),
    authorization=field_values,
    stamp=st.none() | st.text(max_size=20),
    sign=st.text(max_size=40),
    path=st.text(max_size=30),
)
def test_garbage_headers_bodies_and_paths(
    api: Api, raw: bytes, authorization: bytes, stamp: str | None, sign: str, path: str
) -> None:
    base = api.server.sandbox_url
    if stamp is not None:  # the right account with a garbage timestamp, well encoded
        authorization = base64.b64encode(f"{api.tenant.sid}|{stamp}".encode())
    headers = {"Authorization": authorization}
    for url in (
        f"{base}/201612/sid/{api.tenant.sid}/call/TeleMeeting.wx",
        f"{base}/201612/sid/{api.tenant.sid}/call/{path}",
    ):
        try:
            response = httpx.post(
                url, params={"Sign": sign}, content=raw, headers=headers, timeout=30
            )
        except httpx.InvalidURL:
            continue  # the client itself refused to send it
        _check(response)


#: Requests no HTTP/1.1 parser accepts (h11 and httptools alike).
UNPARSEABLE = {
    "header line without a colon": b"Host: a\r\nNo colon here\r\n",
    "NUL in a header value": b"Host: a\r\nAuthorization: a\x00b\r\n",
    "Content-Length not a number": b"Host: a\r\nContent-Length: abc\r\n",
    "space in a header name": b"Host: a\r\nBad Name: v\r\n",
}


@pytest.mark.parametrize("headers", UNPARSEABLE.values(), ids=UNPARSEABLE.keys())
def test_an_unparseable_request_gets_a_plain_400(api: Api, headers: bytes) -> None:
    """What the HTTP layer answers before our code runs (docs/api.md): HTTP 400 in plain text,
    the connection closed, a warning in the log and nothing logged as an internal error. Under
    httptools (the default parser) a control character other than HTAB in a header value, such
    as Authorization: \\x1f, is refused this way too."""
    logged_before = len(api.server.log())
    request = (
        f"POST /201612/sid/{api.tenant.sid}/call/TeleMeeting.wx?Sign=x HTTP/1.1\r\n".encode()
        + headers
        + b"\r\n"
    )
    with socket.create_connection(("127.0.0.1", api.server.sandbox_port), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):  # until the server closes the connection
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer
    assert b"content-type: text/plain" in head.lower() and b"connection: close" in head.lower()
    assert body == b"Invalid HTTP request received."
    time.sleep(0.2)
    logged = api.server.log()[logged_before:]
    assert "Invalid HTTP request received." in logged
    assert "internal_error" not in logged and "Traceback" not in logged
