"""Webhook verification and parsing, with bodies signed by the server's own code."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from telemeeting.client import CallRecord, CallState, MeetingStateChange
from telemeeting.client.webhooks import WebhookVerificationError, kind_of, parse, verify
from telemeeting.wire import callbacks

SECRET = "the-auth-token"


def signed(body: bytes, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    return {
        callbacks.HEADER_EVENT_ID: "ev-1",
        callbacks.HEADER_SEQ: "1",
        callbacks.HEADER_TIMESTAMP: timestamp,
        callbacks.HEADER_SIGNATURE: callbacks.signature(secret, timestamp, body),
    }


def call_state_bytes(**overrides: str) -> bytes:
    body = callbacks.call_state_body(
        request_id="20261128143015000000000000001",
        meid="123",
        phone="13800138000",
        name="张三",
        state="disconnect",
        state_desc="应答|正常",
        timestamp="2026-11-28 14:30:16",
        custom_parm="order-123",
    )
    body.update(overrides)
    return json.dumps(body, ensure_ascii=False).encode()


def test_genuine_push_is_accepted() -> None:
    body = call_state_bytes()
    headers = signed(body)
    assert verify(headers, body, SECRET) == int(headers[callbacks.HEADER_TIMESTAMP])


@pytest.mark.parametrize(
    "shape",
    [
        lambda h: {k.lower(): v for k, v in h.items()},
        lambda h: {k.upper(): v for k, v in h.items()},
        lambda h: list(h.items()),
        lambda h: httpx.Headers(h),
        lambda h: [(k.encode(), v.encode()) for k, v in h.items()],  # ASGI scope headers
    ],
)
def test_headers_are_case_insensitive_in_any_shape(shape) -> None:
    body = call_state_bytes()
    verify(shape(signed(body)), body, SECRET)


def test_str_body_is_its_utf8_bytes() -> None:
    body = call_state_bytes()
    verify(signed(body), body.decode(), SECRET)


def test_tampered_body_is_rejected() -> None:
    body = call_state_bytes()
    headers = signed(body)
    with pytest.raises(WebhookVerificationError, match="signature"):
        verify(headers, call_state_bytes(state="answer"), SECRET)
    with pytest.raises(WebhookVerificationError):
        verify(headers, body + b" ", SECRET)


def test_wrong_secret_is_rejected() -> None:
    body = call_state_bytes()
    with pytest.raises(WebhookVerificationError):
        verify(signed(body, secret="someone-else"), body, SECRET)


def test_stale_and_future_timestamps_are_rejected() -> None:
    body = call_state_bytes()
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify(signed(body, at=time.time() - 301), body, SECRET)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify(signed(body, at=time.time() + 301), body, SECRET)
    verify(signed(body, at=time.time() - 3000), body, SECRET, tolerance=3600)


def test_replayed_signature_with_a_new_timestamp_is_rejected() -> None:
    body = call_state_bytes()
    headers = signed(body, at=time.time() - 1000)
    headers[callbacks.HEADER_TIMESTAMP] = str(int(time.time()))
    with pytest.raises(WebhookVerificationError):
        verify(headers, body, SECRET)


@pytest.mark.parametrize("drop", [callbacks.HEADER_SIGNATURE, callbacks.HEADER_TIMESTAMP])
def test_missing_headers_are_rejected(drop: str) -> None:
    body = call_state_bytes()
    headers = signed(body)
    del headers[drop]
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify(headers, body, SECRET)


def test_non_numeric_timestamp_is_rejected() -> None:
    body = call_state_bytes()
    headers = signed(body)
    headers[callbacks.HEADER_TIMESTAMP] = "yesterday"
    with pytest.raises(WebhookVerificationError):
        verify(headers, body, SECRET)


@pytest.mark.parametrize(
    "url",
    ["CallState", "https://app.example/cb?CallState", "https://app.example/cb?t=1&CallState"],
)
def test_parse_call_state(url: str) -> None:
    (event,) = parse(url, call_state_bytes())
    assert isinstance(event, CallState)
    assert (event.request_id, event.meid, event.phone, event.name) == (
        "20261128143015000000000000001",
        "123",
        "13800138000",
        "张三",
    )
    assert (event.state, event.state_desc, event.reason, event.custom_parm) == (
        "disconnect",
        "应答|正常",
        "正常",
        "order-123",
    )
    assert event.timestamp is not None and event.timestamp.isoformat() == (
        "2026-11-28T14:30:16+08:00"
    )


def test_parse_cdr_push_gives_one_record_each() -> None:
    first = callbacks.cdr_body(
        request_id="r1",
        appid="app",
        meid="123",
        caller="4008000000",
        called="13800138000",
        start="2026-11-28 14:30:16",
        end="2026-11-28 14:35:16",
        duration=300,
        custom_parm="c",
        state_desc="应答|正常",
        amount=0.5,
    )
    second = callbacks.cdr_body(
        request_id="r2",
        appid="app",
        meid="123",
        caller="4008000000",
        called="13800000486",
        start="",
        end="",
        duration=0,
        custom_parm="c",
        state_desc="未应答|用户忙",
    )
    body = {"cdr": first["cdr"] + second["cdr"]}
    records = parse("http://x/cb?Call", json.dumps(body).encode())
    assert all(isinstance(r, CallRecord) for r in records)
    answered, busy = records
    assert (answered.called, answered.duration, answered.amount) == ("13800138000", 300, 0.5)
    assert answered.start_time is not None and answered.end_time is not None
    assert (busy.start_time, busy.end_time, busy.tapes_url) == (None, None, "NoTapes")


def test_parse_meeting_state() -> None:
    body = callbacks.meeting_state_body(
        meid="123", state="end", reason="destroyed", timestamp="2026-11-28 14:40:00"
    )
    (event,) = parse("https://app.example/cb?MeetingState", body)
    assert isinstance(event, MeetingStateChange)
    assert (event.meid, event.state, event.reason) == ("123", "end", "destroyed")


def test_unknown_kind_and_bad_cdr_are_errors() -> None:
    with pytest.raises(ValueError):
        kind_of("https://app.example/cb?Something")
    with pytest.raises(ValueError):
        kind_of("https://app.example/CallState")  # the kind is in the query, not the path
    with pytest.raises(ValueError):
        parse("Call", b'{"cdr": "nope"}')
