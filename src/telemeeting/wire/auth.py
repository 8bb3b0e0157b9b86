"""Authorization header and Sign query parameter (spec §3): computing and checking.

Authorization = Base64(accountSID + "|" + timestamp);
Sign = MD5(accountSID + authToken + timestamp).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from telemeeting.wire.times import format_second

TIMESTAMP_FORMAT = "%Y%m%d%H%M%S"
_TIMESTAMP_RE = re.compile(r"[0-9]{14}")


def format_timestamp(moment: datetime, zone: ZoneInfo) -> str:
    """The yyyyMMddHHmmss wall-clock form of `moment` in `zone`."""
    return format_second(math.floor(moment.timestamp()), zone, TIMESTAMP_FORMAT)


def make_authorization(account_sid: str, timestamp: str) -> str:
    return base64.b64encode(f"{account_sid}|{timestamp}".encode()).decode("ascii")


def make_sign(account_sid: str, auth_token: str, timestamp: str) -> str:
    """Upper-case MD5 hex, as most real clients send it (the server accepts either case)."""
    return hashlib.md5(f"{account_sid}{auth_token}{timestamp}".encode()).hexdigest().upper()


@dataclass(frozen=True)
class Authorization:
    account_sid: str
    timestamp: str


def parse_authorization(header: str | None) -> Authorization | None:
    """Decode the header; None when it is missing, not Base64, or not `sid|yyyyMMddHHmmss`."""
    if not header:
        return None
    try:
        decoded = base64.b64decode(header.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    sid, sep, timestamp = decoded.partition("|")
    if not sep or not sid or not _TIMESTAMP_RE.fullmatch(timestamp):
        return None
    return Authorization(sid, timestamp)


def timestamp_in_window(
    timestamp: str, now: datetime, zone: ZoneInfo, window_seconds: float
) -> bool:
    """Whether the wall-clock `timestamp` (in `zone`) lies within ±window of `now`."""
    try:
        moment = datetime.strptime(timestamp, TIMESTAMP_FORMAT).replace(tzinfo=zone)
    except ValueError:
        return False
    return abs(moment - now) <= timedelta(seconds=window_seconds)


def sign_matches(sign: str | None, account_sid: str, auth_token: str, timestamp: str) -> bool:
    """Case-insensitive, constant-time comparison of the client's Sign with the expected one."""
    if not sign:
        return False
    expected = make_sign(account_sid, auth_token, timestamp)
    return hmac.compare_digest(sign.strip().upper().encode(), expected.encode())


def signed_headers(
    account_sid: str, auth_token: str, now: datetime, zone: ZoneInfo
) -> tuple[dict[str, str], str]:
    """Headers and the Sign value for one request, as the SDK and tests send them."""
    timestamp = format_timestamp(now, zone)
    headers = {
        "Accept": "application/json;",
        "Content-Type": "application/json;charset=utf-8;",
        "Authorization": make_authorization(account_sid, timestamp),
    }
    return headers, make_sign(account_sid, auth_token, timestamp)
