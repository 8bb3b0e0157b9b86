"""What the SDK puts on the wire, and when it retries, against an in-process mock transport."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from telemeeting.client import (
    AsyncClient,
    Client,
    MeetingError,
    Party,
    RateLimitError,
    TeleMeetingError,
    TransportError,
)
from telemeeting.client.errors import error_for
from telemeeting.client.models import parties_to_wire
from telemeeting.wire.auth import make_sign

SID, TOKEN, APP = "a" * 32, "secret-token", "b" * 32
OK = {"statusCode": "0", "statusMsg": "提交成功", "requestId": "20261128143015000000000000001"}

Handler = Callable[[httpx.Request], httpx.Response]


def recording(*replies: httpx.Response | Exception) -> tuple[list[httpx.Request], Handler]:
    """A handler answering with `replies` in turn (the last one repeats), keeping each request."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        reply = replies[min(len(seen), len(replies)) - 1]
        if isinstance(reply, Exception):
            raise reply
        return reply

    return seen, handle


def ok(**extra: object) -> httpx.Response:
    return httpx.Response(200, json={**OK, **extra})


def client_for(handler: Handler, retries: int = 2) -> Client:
    return Client(
        SID,
        TOKEN,
        APP,
        "http://ytx.test/",
        retries=retries,
        backoff=0.001,
        transport=httpx.MockTransport(handler),
    )


def test_requests_are_signed_with_wire_auth() -> None:
    seen, handler = recording(ok(meid="42"))
    with client_for(handler) as client:
        assert client.create_meeting("周会").meid == "42"
    (request,) = seen
    assert request.method == "POST"
    assert request.url.path == f"/201612/sid/{SID}/call/TeleMeeting.wx"
    sid, _, timestamp = base64.b64decode(request.headers["Authorization"]).decode().partition("|")
    assert sid == SID and len(timestamp) == 14
    assert parse_qs(urlsplit(str(request.url)).query)["Sign"] == [make_sign(SID, TOKEN, timestamp)]
    assert request.headers["Content-Type"].startswith("application/json")
    assert json.loads(request.content) == {
        "action": "createMeeting",
        "appid": APP,
        "meetingname": "周会",
    }
    assert "Idempotency-Key" not in request.headers


@pytest.mark.parametrize(
    ("call", "action", "func_url", "params"),
    [
        (lambda c: c.query_meeting("7"), "queryMeeting", "MeetingQuery.wx", {"confid": "7"}),
        (
            lambda c: c.meeting_events("7", after=3, limit=9),
            "queryMeetingEvents",
            "MeetingQuery.wx",
            {"confid": "7", "after": 3, "limit": 9},
        ),
        (lambda c: c.destroy_meeting("7"), "destroyMeeting", "TeleMeeting.wx", {"confid": "7"}),
        (
            lambda c: c.mute_member("7", "1380"),
            "muteMeetingMember",
            "TeleMeeting.wx",
            {"confid": "7", "phone": "1380"},
        ),
        (
            lambda c: c.unmute_member("7", "1380"),
            "unmuteMeetingMember",
            "TeleMeeting.wx",
            {"confid": "7", "phone": "1380"},
        ),
        (
            lambda c: c.kick_member("7", "1380"),
            "kickMeetingMember",
            "TeleMeeting.wx",
            {"confid": "7", "phone": "1380"},
        ),
        (
            lambda c: c.invite("7", [("张三", "1380")], custom_parm="c"),
            "inviteJoinMeeting",
            "TeleMeeting.wx",
            {"confid": "7", "parties": [{"name": "张三", "phone": "1380"}], "CustomParm": "c"},
        ),
    ],
)
def test_each_action_on_the_wire(
    call: Callable, action: str, func_url: str, params: dict[str, object]
) -> None:
    seen, handler = recording(ok(meeting={"meid": "7", "members": []}, events=[]))
    with client_for(handler) as client:
        call(client)
    assert seen[0].url.path.endswith(f"/call/{func_url}")
    assert json.loads(seen[0].content) == {"action": action, "appid": APP, **params}


def test_create_meeting_parameters_and_booking() -> None:
    seen, handler = recording(ok(meid="r1"))
    with client_for(handler) as client:
        client.create_meeting(
            creator="13800138000",
            parties=[Party("01053889900", extension="12")],
            confid="r1",
            srcclid="1",
            dstclid="2",
            shownumber="3",
            book_time="2030-01-02 03:04:05",
            max_members=7,
            custom_parm="cp",
        )
    assert json.loads(seen[0].content) == {
        "action": "createMeeting",
        "appid": APP,
        "creator": "13800138000",
        "confid": "r1",
        "srcclid": "1",
        "dstclid": "2",
        "shownumber": "3",
        "maxmembers": 7,
        "CustomParm": "cp",
        "parties": [{"phone": "01053889900,12"}],
        "bookmeeting": "1",
        "booktime": "2030-01-02 03:04:05",
    }


def test_idempotency_key_header() -> None:
    seen, handler = recording(ok(meid="1"))
    with client_for(handler) as client:
        client.create_meeting(idempotency_key="create-1")
        client.invite("1", ["13800138000"], idempotency_key="invite-1")
        client.destroy_meeting("1", idempotency_key="destroy-1")
        with pytest.raises(ValueError):
            client.invite("1", ["13800138000"], idempotency_key="x" * 129)
    assert [r.headers["Idempotency-Key"] for r in seen] == ["create-1", "invite-1", "destroy-1"]


def test_queries_are_retried_and_signed_afresh() -> None:
    seen, handler = recording(
        httpx.ReadTimeout("slow"), httpx.Response(502, text="bad gateway"), ok(events=[])
    )
    with client_for(handler) as client:
        assert client.meeting_events("1") == []
    assert len(seen) == 3


def test_invite_without_key_is_not_retried_after_a_timeout() -> None:
    seen, handler = recording(httpx.ReadTimeout("slow"), ok())
    with client_for(handler) as client, pytest.raises(TransportError) as info:
        client.invite("1", ["13800138000"])
    assert len(seen) == 1  # it may have been dialled: repeating could ring the phone twice
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    assert info.value.status_code == "" and "ReadTimeout" in info.value.status_msg


def test_invite_with_key_is_retried() -> None:
    seen, handler = recording(httpx.ReadTimeout("slow"), ok())
    with client_for(handler) as client:
        client.invite("1", ["13800138000"], idempotency_key="k")
    assert [r.headers["Idempotency-Key"] for r in seen] == ["k", "k"]


def test_connect_errors_are_retried_for_any_call() -> None:
    seen, handler = recording(httpx.ConnectError("refused"), ok())
    with client_for(handler) as client:
        client.invite("1", ["13800138000"])
    assert len(seen) == 2


def test_rate_limit_is_retried_for_queries_then_raised() -> None:
    limited = httpx.Response(
        200, json={"statusCode": "-104", "statusMsg": "请求频率过高", "requestId": ""}
    )
    seen, handler = recording(limited)
    with client_for(handler, retries=3) as client, pytest.raises(RateLimitError) as info:
        client.query_meeting("1")
    assert len(seen) == 4 and info.value.status_code == "-104"
    seen, handler = recording(limited)
    with client_for(handler, retries=3) as client, pytest.raises(RateLimitError):
        client.invite("1", ["13800138000"])
    assert len(seen) == 1


def test_errors_are_not_retried() -> None:
    seen, handler = recording(
        httpx.Response(200, json={"statusCode": "-300", "statusMsg": "会议不存在", "requestId": ""})
    )
    with client_for(handler) as client, pytest.raises(MeetingError):
        client.query_meeting("1")
    assert len(seen) == 1


def test_envelope_on_404_and_garbage() -> None:
    _, handler = recording(
        httpx.Response(404, json={"statusCode": "-3", "statusMsg": "无效action", "requestId": ""})
    )
    with client_for(handler) as client, pytest.raises(TeleMeetingError) as info:
        client.query_meeting("1")
    assert (info.value.status_code, info.value.http_status) == ("-3", 404)
    _, handler = recording(httpx.Response(200, text="<html>"))
    with client_for(handler, retries=0) as client, pytest.raises(TransportError) as info:
        client.query_meeting("1")
    assert info.value.http_status == 200


async def test_async_client_retries_queries() -> None:
    seen, handler = recording(httpx.ConnectTimeout("slow"), ok(meeting={"meid": "9"}))
    async with AsyncClient(
        SID, TOKEN, APP, "http://ytx.test", backoff=0.001, transport=httpx.MockTransport(handler)
    ) as client:
        meeting = await client.query_meeting("9")
    assert meeting.meid == "9" and len(seen) == 2


def test_missing_credentials_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TELEMEETING_ACCOUNT_SID", "TELEMEETING_AUTH_TOKEN", "TELEMEETING_APP_ID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="auth_token, app_id"):
        Client(SID)


def test_parties_in_every_shape() -> None:
    assert parties_to_wire(
        [
            ("张三", "13800138000"),
            {"name": "李四", "phone": "13900139000"},
            {"phone": "01053889900", "extension": "1234"},
            Party("01053889900", name="前台", extension="5#"),
            "13700137000",
        ]
    ) == [
        {"phone": "13800138000", "name": "张三"},
        {"phone": "13900139000", "name": "李四"},
        {"phone": "01053889900,1234"},
        {"phone": "01053889900,5#", "name": "前台"},
        {"phone": "13700137000"},
    ]
    with pytest.raises(ValueError):
        Party("01053889900,1", extension="2")
    with pytest.raises(TypeError):
        Party.of(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "family"),
    [
        ("-200", "AuthError"),
        ("-201", "AuthError"),
        ("-202", "AuthError"),
        ("-203", "AuthError"),
        ("-204", "AuthError"),
        ("-205", "AuthError"),
        ("-2", "ValidationError"),
        ("-101", "ValidationError"),
        ("-102", "ValidationError"),
        ("-300", "MeetingError"),
        ("-304", "MeetingError"),
        ("-104", "RateLimitError"),
        ("-100", "TeleMeetingError"),
        ("-4", "TeleMeetingError"),
    ],
)
def test_error_families(code: str, family: str) -> None:
    assert type(error_for(code, "m", "")).__name__ == family
