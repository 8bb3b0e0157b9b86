"""Whatever arrives, the answer is the contract's envelope with a contract code: never a 500,
never a stack trace (spec §1, §3, §4). Hypothesis generates the garbage; the server is real."""

from __future__ import annotations

import json

import httpx
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


@FUZZ
@given(
    raw=st.binary(max_size=300),
    authorization=st.text(max_size=60),
    sign=st.text(max_size=40),
    path=st.text(max_size=30),
)
def test_garbage_headers_bodies_and_paths(
    api: Api, raw: bytes, authorization: str, sign: str, path: str
) -> None:
    base = api.server.sandbox_url
    headers = {"Authorization": authorization.encode("utf-8", "ignore").decode("latin-1", "ignore")}
    for url in (
        f"{base}/201612/sid/{api.tenant.sid}/call/TeleMeeting.wx",
        f"{base}/201612/sid/{api.tenant.sid}/call/{path}",
    ):
        try:
            response = httpx.post(
                url, params={"Sign": sign}, content=raw, headers=headers, timeout=30
            )
        except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeEncodeError):
            continue  # the client itself refused to send it
        _check(response)
