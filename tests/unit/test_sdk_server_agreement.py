"""The SDK and the server apply the same rules of the contract (issue 11 item 9), each taken
from `telemeeting.wire`: every request the SDK makes is on a path the server serves, with an
action served there; what the SDK writes as a booktime the server reads; each status family is
one SDK exception class, and the retryable ones (-104, also the database-unavailable answer) are
retried exactly for calls that are safe to repeat; the server's state names are the SDK's.
The Idempotency-Key rule has its own test (test_idempotency_key_rule.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from telemeeting.client import Client
from telemeeting.client._calls import Call, Calls, RetryPolicy
from telemeeting.client.errors import (
    AuthError,
    MeetingError,
    RateLimitError,
    TeleMeetingError,
    ValidationError,
    error_for,
)
from telemeeting.domain.model import LegState, MeetingState
from telemeeting.wire import actions as wa
from telemeeting.wire import states
from telemeeting.wire.endpoints import PATH_PATTERN, actions_at
from telemeeting.wire.status import (
    AUTH_CODES,
    MEETING_CODES,
    RETRY_LATER_CODES,
    VALIDATION_CODES,
    Status,
)
from telemeeting.wire.times import parse_wall_clock

SID, TOKEN, APP = "a" * 32, "t" * 32, "b" * 32
ZONE = ZoneInfo("Asia/Shanghai")


def _every_call(client: Client) -> None:
    """Each public method of the SDK that sends a request, once."""
    client.create_meeting("m", parties=[("p", "13800138000")], idempotency_key="k")
    client.create_meeting("b", book_time=datetime.now(UTC) + timedelta(hours=1))
    client.invite("123456", [("p", "13800138001")])
    client.destroy_meeting("123456")
    client.query_meeting("123456")
    client.mute_member("123456", "13800138000")
    client.unmute_member("123456", "13800138000")
    client.kick_member("123456", "13800138000")
    client.meeting_events("123456")
    client.balance()
    client.cdrs()
    client.cdrs_of_request("x")
    client.cdrs_in_hour("20260101", 3)


def test_every_request_of_the_sdk_is_on_a_path_the_server_serves() -> None:
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        match = PATH_PATTERN.fullmatch(request.url.path)
        assert match is not None, request.url
        assert match["sid"] == SID
        served = actions_at(match["version"], match["func"], match["func_url"])
        action = json.loads(request.content)["action"]
        assert served is not None and action in served, (request.url.path, action)
        seen.append((request.url.path, action))
        ok: dict[str, Any] = {"statusCode": Status.OK.code, "statusMsg": "", "requestId": "r"}
        return httpx.Response(200, json={**ok, "meid": "123456", "meeting": {}, "cdr": []})

    with Client(SID, TOKEN, APP, "http://ytx.test", transport=httpx.MockTransport(handler)) as c:
        _every_call(c)
    assert len(seen) == 13
    assert {action for _, action in seen} >= {wa.CREATE_MEETING, wa.INVITE, wa.KICK_MEMBER}


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1)))
def test_the_booktime_the_sdk_writes_is_one_the_server_reads(moment: datetime) -> None:
    calls = Calls(SID, TOKEN, APP, "http://ytx.test", ZONE, RetryPolicy())
    call = calls.create_meeting(
        meeting_name=None,
        creator=None,
        parties=None,
        confid=None,
        srcclid=None,
        dstclid=None,
        shownumber=None,
        book_time=moment.replace(tzinfo=UTC),
        max_members=None,
        custom_parm=None,
        idempotency_key=None,
    )
    parsed = parse_wall_clock(call.params["booktime"], ZONE)
    assert parsed == moment.replace(tzinfo=UTC, microsecond=0).timestamp()


def _family(code: str) -> type[TeleMeetingError]:
    for codes, kind in (
        (AUTH_CODES, AuthError),
        (VALIDATION_CODES, ValidationError),
        (MEETING_CODES, MeetingError),
        (RETRY_LATER_CODES, RateLimitError),
    ):
        if code in codes:
            return kind
    return TeleMeetingError


@pytest.mark.parametrize("status", list(Status), ids=lambda s: s.name)
def test_each_status_is_raised_as_its_familys_exception(status: Status) -> None:
    if status is Status.OK:
        return
    error = error_for(status.code, status.message)
    assert type(error) is _family(status.code)


def test_the_families_do_not_overlap_and_cover_the_database_answer() -> None:
    families = [AUTH_CODES, VALIDATION_CODES, MEETING_CODES, RETRY_LATER_CODES]
    assert sum(len(f) for f in families) == len(frozenset().union(*families))
    assert Status.DATABASE_UNAVAILABLE.code in RETRY_LATER_CODES


@pytest.mark.parametrize("idempotent", [True, False])
def test_the_database_unavailable_answer_is_retried_when_repeating_is_safe(
    idempotent: bool,
) -> None:
    calls = Calls(SID, TOKEN, APP, "http://ytx.test", ZONE, RetryPolicy(retries=2))
    call = Call(wa.QUERY_MEETING, wa.MEETING_QUERY, {}, idempotent=idempotent)
    unavailable = Status.DATABASE_UNAVAILABLE
    error = error_for(unavailable.code, unavailable.message)
    assert isinstance(error, RateLimitError)
    assert calls.may_retry(call, error, attempt=0) is idempotent


def test_the_sdk_retries_the_database_answer_over_the_wire() -> None:
    """A query answered "database unavailable" twice, then success: the caller sees success."""
    answers = iter([Status.DATABASE_UNAVAILABLE, Status.DATABASE_UNAVAILABLE, Status.OK])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        body = {"statusCode": status.code, "statusMsg": status.message, "requestId": ""}
        return httpx.Response(200, json={**body, "meeting": {"meid": "123456"}})

    transport = httpx.MockTransport(handler)
    with Client(SID, TOKEN, APP, "http://ytx.test", backoff=0.001, transport=transport) as c:
        assert c.query_meeting("123456").meid == "123456"


def test_the_servers_state_names_are_the_contracts() -> None:
    assert tuple(state.value for state in LegState) == states.LEG_STATES
    assert tuple(state.value for state in MeetingState) == states.MEETING_STATES


def test_the_sdk_url_is_the_one_path_rule() -> None:
    calls = Calls(SID, TOKEN, APP, "http://ytx.test/", ZONE, RetryPolicy())
    url, _, _ = calls.request(calls.query_meeting("123456"))
    assert PATH_PATTERN.fullmatch(urlsplit(url).path)
