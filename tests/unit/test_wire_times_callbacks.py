"""Wire times and the status-push helpers (spec §6.4, §7)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telemeeting.wire.callbacks import (
    CALL_STATE,
    CDR,
    HEADER_EVENT_ID,
    HEADER_SEQ,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    KINDS,
    MEETING_STATE,
    call_state_body,
    cdr_body,
    meeting_state_body,
    push_url,
    signature,
)
from telemeeting.wire.times import format_wire_time, parse_wall_clock

SHANGHAI = ZoneInfo("Asia/Shanghai")
# 2026-11-28 14:30:16 in Shanghai.
EPOCH = datetime(2026, 11, 28, 6, 30, 16, tzinfo=UTC).timestamp()


# ---- times ----------------------------------------------------------------------------------


def test_format_wire_time():
    assert format_wire_time(EPOCH, SHANGHAI) == "2026-11-28 14:30:16"
    assert format_wire_time(EPOCH, ZoneInfo("UTC")) == "2026-11-28 06:30:16"
    assert format_wire_time(EPOCH + 0.9, SHANGHAI) == "2026-11-28 14:30:16"


def test_format_wire_time_not_yet_is_empty():
    assert format_wire_time(None, SHANGHAI) == ""


def test_format_wire_time_zero_epoch_is_a_time():
    assert format_wire_time(0, SHANGHAI) == "1970-01-01 08:00:00"


@pytest.mark.parametrize("text", ["20261128143016", "2026-11-28 14:30:16"])
def test_parse_wall_clock_both_formats(text):
    assert parse_wall_clock(text, SHANGHAI) == EPOCH


def test_parse_wall_clock_uses_the_zone():
    assert parse_wall_clock("20261128063016", ZoneInfo("UTC")) == EPOCH


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tomorrow",
        "2026-11-28T14:30:16",
        "2026/11/28 14:30:16",
        "2026-11-28 14:30",
        "2026-11-28",
        "20261328143016",
        "20260230143016",
        "202611281430161",  # 15 digits
        " 20261128143016",
    ],
)
def test_parse_wall_clock_rejects(text):
    assert parse_wall_clock(text, SHANGHAI) is None


@pytest.mark.parametrize(
    "text",
    [
        "202611281430",  # yyyyMMddHHmm: strptime reads it as 14:03:00
        "2026112814301",  # 13 digits: read as 14:30:01
        "20261128143",  # 11 digits: read as 01:04:03
        "2026-1-8 4:3:6",  # not zero-padded
        "２０２６１１２８１４３０１６",  # fullwidth digits
    ],
)
def test_parse_wall_clock_is_strict_about_the_two_formats(text):
    """Docstring: `yyyyMMddHHmmss` or `yyyy-MM-dd HH:mm:ss`, None if neither."""
    assert parse_wall_clock(text, SHANGHAI) is None


@given(st.integers(min_value=946_684_800, max_value=4_102_444_799))
def test_wire_time_round_trip(epoch):
    text = format_wire_time(epoch, SHANGHAI)
    assert parse_wall_clock(text, SHANGHAI) == epoch
    assert parse_wall_clock(text.replace("-", "").replace(" ", "").replace(":", ""), SHANGHAI) == (
        epoch
    )


# ---- push URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "expected"),
    [
        ("https://example.com/cb", CALL_STATE, "https://example.com/cb?CallState"),
        ("https://example.com/cb?app=1", CALL_STATE, "https://example.com/cb?app=1&CallState"),
        ("https://example.com/cb?a=1&b=2", CDR, "https://example.com/cb?a=1&b=2&Call"),
        ("http://h:8080/x/", MEETING_STATE, "http://h:8080/x/?MeetingState"),
    ],
)
def test_push_url(url, kind, expected):
    assert push_url(url, kind) == expected


def test_kinds_and_headers():
    assert KINDS == ("CallState", "Call", "MeetingState")
    assert (HEADER_EVENT_ID, HEADER_SEQ, HEADER_TIMESTAMP, HEADER_SIGNATURE) == (
        "X-Telemeeting-Event-Id",
        "X-Telemeeting-Seq",
        "X-Telemeeting-Timestamp",
        "X-Telemeeting-Signature",
    )


# ---- bodies ---------------------------------------------------------------------------------


def test_call_state_body_matches_spec_example():
    body = call_state_body(
        request_id="r1",
        meid="002",
        phone="13800138000",
        name="张三",
        state="alerting",
        state_desc="振铃",
        timestamp="2026-11-28 14:30:16",
        custom_parm="order-123",
    )
    assert body == {
        "requestid": "r1",
        "meid": "002",
        "dsc": "13800138000",
        "name": "张三",
        "state": "alerting",
        "stateDesc": "振铃",
        "timestamp": "2026-11-28 14:30:16",
        "customParm": "order-123",
    }
    assert list(body) == [
        "requestid",
        "meid",
        "dsc",
        "name",
        "state",
        "stateDesc",
        "timestamp",
        "customParm",
    ]


def test_cdr_body():
    body = cdr_body(
        request_id="r1",
        appid="app",
        meid="002",
        caller="4001234567",
        called="13800138000",
        start="2026-11-28 14:30:16",
        end="",
        duration=0,
        custom_parm="c",
        state_desc="未应答|用户忙",
    )
    assert list(body) == ["cdr"]
    assert len(body["cdr"]) == 1
    record = body["cdr"][0]
    assert record == {
        "requestid": "r1",
        "appid": "app",
        "meid": "002",
        "caller": "4001234567",
        "called": "13800138000",
        "calledstime": "2026-11-28 14:30:16",
        "calledetime": "",
        "duration": 0,
        "oriamount": 0.0,
        "customParm": "c",
        "stateDesc": "未应答|用户忙",
        "tapesurl": "NoTapes",
    }
    assert isinstance(record["duration"], int)
    assert isinstance(record["oriamount"], float)


def test_cdr_body_amount():
    body = cdr_body(
        request_id="r",
        appid="a",
        meid="m",
        caller="c",
        called="d",
        start="s",
        end="e",
        duration=61,
        custom_parm="",
        state_desc="应答|正常",
        amount=0.12,
    )
    assert body["cdr"][0]["oriamount"] == 0.12
    assert body["cdr"][0]["duration"] == 61


def test_meeting_state_body():
    assert meeting_state_body(meid="m", state="end", reason="empty", timestamp="t") == {
        "meid": "m",
        "state": "end",
        "reason": "empty",
        "timestamp": "t",
    }


# ---- signature ------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_over_timestamp_dot_body():
    body = json.dumps({"meid": "002", "name": "张三"}, ensure_ascii=False).encode()
    expected = hmac.new(b"token", b"1764311416." + body, hashlib.sha256).hexdigest()
    assert signature("token", "1764311416", body) == expected
    assert len(expected) == 64


def test_signature_known_value():
    # Independently computed: HMAC-SHA256(key=b"key", msg=b"1.{}").
    assert signature("key", "1", b"{}") == hmac.new(b"key", b"1.{}", hashlib.sha256).hexdigest()
    assert signature("key", "1", b"{}") != signature("key", "2", b"{}")
    assert signature("key", "1", b"{}") != signature("other", "1", b"{}")
    assert signature("key", "1", b"{}") != signature("key", "1", b"{ }")


@given(st.text(min_size=1, max_size=40), st.integers(min_value=0, max_value=2**40), st.binary())
def test_signature_property(secret, ts, body):
    sig = signature(secret, str(ts), body)
    assert sig == hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    assert sig == sig.lower()
