"""Receiving status pushes (spec §7): check they came from the platform, then read them.

    from telemeeting.client import webhooks

    webhooks.verify(request.headers, raw_body, auth_token)      # raises if forged or stale
    for event in webhooks.parse(str(request.url), raw_body):    # CallState, CallRecord, …
        ...

Verify the raw bytes exactly as received, before any JSON parsing: the signature covers them.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from telemeeting.client.models import DEFAULT_ZONE, PushEvent, parse_push
from telemeeting.wire.callbacks import (
    HEADER_EVENT_ID,
    HEADER_SEQ,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    KINDS,
    signature,
)

__all__ = [
    "HEADER_EVENT_ID",
    "HEADER_SEQ",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "WebhookVerificationError",
    "kind_of",
    "parse",
    "verify",
]

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


class WebhookVerificationError(Exception):
    """A push whose signature or timestamp does not check out: answer it with 4xx, ignore it."""


def _header(headers: Headers, name: str) -> str | None:
    """Case-insensitive lookup over a dict, a Starlette/httpx Headers or a list of pairs."""
    wanted = name.lower()
    items = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        key_text = key.decode("latin-1") if isinstance(key, bytes) else str(key)
        if key_text.lower() == wanted:
            return value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return None


def _raw(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def verify(
    headers: Headers,
    body: bytes | str,
    secret: str,
    tolerance: float = 300,
    *,
    now: float | None = None,
) -> int:
    """Check `X-Telemeeting-Signature` (HMAC-SHA256 keyed by the account's authToken over
    `timestamp + "." + body`) and that `X-Telemeeting-Timestamp` is within `tolerance` seconds
    of now, which stops replays of old pushes. Returns the push's timestamp.
    """
    timestamp = _header(headers, HEADER_TIMESTAMP)
    given = _header(headers, HEADER_SIGNATURE)
    if not timestamp or not given:
        raise WebhookVerificationError(f"missing {HEADER_TIMESTAMP} or {HEADER_SIGNATURE}")
    timestamp = timestamp.strip()
    if not timestamp.isdigit() or not timestamp.isascii():
        raise WebhookVerificationError(f"{HEADER_TIMESTAMP} is not Unix seconds")
    expected = signature(secret, timestamp, _raw(body))
    if not hmac.compare_digest(given.strip().lower().encode(), expected.encode()):
        raise WebhookVerificationError("signature mismatch")
    moment = int(timestamp)
    current = time.time() if now is None else now
    if abs(current - moment) > tolerance:
        raise WebhookVerificationError(f"timestamp {moment} outside the {tolerance:g} s tolerance")
    return moment


def kind_of(url_or_kind: str) -> str:
    """`CallState`, `Call` or `MeetingState`, from the kind itself or the URL pushed to
    (`…/cb?CallState`, `…/cb?token=x&Call`)."""
    if url_or_kind in KINDS:
        return url_or_kind
    query = urlsplit(url_or_kind).query if "?" in url_or_kind else ""
    for part in query.split("&"):
        if part in KINDS:
            return part
    raise ValueError(f"no push kind ({', '.join(KINDS)}) in {url_or_kind!r}")


def parse(
    url_or_kind: str,
    body: bytes | str | Mapping[str, Any],
    *,
    zone: ZoneInfo = DEFAULT_ZONE,
) -> list[PushEvent]:
    """The typed events of one push: one `CallState`, one `MeetingStateChange`, or one
    `CallRecord` per entry of a CDR push's `cdr` list."""
    kind = kind_of(url_or_kind)
    data: Any = body if isinstance(body, Mapping) else json.loads(_raw(body).decode("utf-8"))
    return parse_push(kind, data, zone)
