"""Authorization header and Sign (spec §3), against the documented test vector."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telemeeting.wire.auth import (
    TIMESTAMP_FORMAT,
    Authorization,
    format_timestamp,
    make_authorization,
    make_sign,
    parse_authorization,
    parse_timestamp,
    sign_matches,
    signed_headers,
    timestamp_in_window,
)

SID = "0123456789abcdef0123456789abcdef"
TOKEN = "fedcba9876543210fedcba9876543210"
TS = "20140416142030"
VECTOR_AUTHORIZATION = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWZ8MjAxNDA0MTYxNDIwMzA="
VECTOR_SIGN = "0fcc2c28c68f547d87312a3d2d0ccf0a"
SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = 24 * 3600

sids = st.text(alphabet="0123456789abcdefABCDEF", min_size=1, max_size=40)
timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59)
).map(lambda d: d.strftime("%Y%m%d%H%M%S"))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# ---- test vector ----------------------------------------------------------------------------


def test_authorization_test_vector():
    assert make_authorization(SID, TS) == VECTOR_AUTHORIZATION


def test_sign_test_vector_is_upper_case_md5_hex():
    sign = make_sign(SID, TOKEN, TS)
    assert sign == VECTOR_SIGN.upper()
    assert sign.lower() == VECTOR_SIGN
    assert len(sign) == 32


def test_sign_is_md5_of_sid_token_timestamp_in_that_order():
    expected = hashlib.md5(f"{SID}{TOKEN}{TS}".encode()).hexdigest()
    assert make_sign(SID, TOKEN, TS).lower() == expected
    # The order of the three parts matters.
    assert make_sign(TOKEN, SID, TS) != make_sign(SID, TOKEN, TS)


def test_parse_authorization_test_vector():
    assert parse_authorization(VECTOR_AUTHORIZATION) == Authorization(SID, TS)


@pytest.mark.parametrize("sign", [VECTOR_SIGN, VECTOR_SIGN.upper(), VECTOR_SIGN.title()])
def test_sign_matches_test_vector_in_either_case(sign):
    assert sign_matches(sign, SID, TOKEN, TS)


def test_sign_matches_tolerates_surrounding_whitespace():
    assert sign_matches(f" {VECTOR_SIGN}\n", SID, TOKEN, TS)


@pytest.mark.parametrize(
    "sign",
    [
        None,
        "",
        VECTOR_SIGN[:-1],
        VECTOR_SIGN + "0",
        VECTOR_SIGN[:-1] + "b",
        "C1F20E7A9733CE94F680C70A1DBABCDE",
        "０fcc2c28c68f547d87312a3d2d0ccf0a",  # fullwidth zero
    ],
)
def test_sign_matches_rejects_wrong_or_missing(sign):
    assert not sign_matches(sign, SID, TOKEN, TS)


def test_sign_matches_depends_on_token_sid_and_timestamp():
    assert not sign_matches(VECTOR_SIGN, SID, TOKEN[::-1], TS)
    assert not sign_matches(VECTOR_SIGN, SID[::-1], TOKEN, TS)
    assert not sign_matches(VECTOR_SIGN, SID, TOKEN, "20140416142031")


# ---- parse_authorization --------------------------------------------------------------------


@given(sid=sids, ts=timestamps)
def test_authorization_round_trip(sid, ts):
    assert parse_authorization(make_authorization(sid, ts)) == Authorization(sid, ts)


@given(sid=sids, token=sids, ts=timestamps)
def test_sign_round_trip_any_case(sid, token, ts):
    sign = make_sign(sid, token, ts)
    assert sign == sign.upper()
    assert sign_matches(sign.lower(), sid, token, ts)
    assert sign_matches(sign, sid, token, ts)


def test_parse_authorization_strips_surrounding_whitespace():
    assert parse_authorization(f"  {VECTOR_AUTHORIZATION}\r\n") == Authorization(SID, TS)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "not base64!!",
        VECTOR_AUTHORIZATION[:-1],  # broken padding
        "Basic " + VECTOR_AUTHORIZATION,  # no scheme prefix allowed
        _b64(f"{SID}{TS}"),  # no separator
        _b64(f"{SID}:{TS}"),  # wrong separator
        _b64(f"|{TS}"),  # empty sid
        _b64(f"{SID}|"),  # empty timestamp
        _b64(f"{SID}|2014041614203"),  # 13 digits
        _b64(f"{SID}|201404161420300"),  # 15 digits
        _b64(f"{SID}|2014-04-16 14:20:30"),
        _b64(f"{SID}|2014041614203x"),
        _b64(f"{SID}|{TS}|extra"),
        base64.b64encode(b"\xff\xfe|20140416142030").decode(),  # not UTF-8
    ],
)
def test_parse_authorization_rejects(header):
    assert parse_authorization(header) is None


@pytest.mark.parametrize(
    "timestamp",
    [
        f"{TS}\n",  # trailing newline: `$` in the regex matches before it
        "٢٠١٤٠٤١٦١٤٢٠٣٠",  # Arabic-Indic digits match `\d`
        "２０１４０４１６１４２０３０",  # fullwidth digits match `\d`
    ],
)
def test_parse_authorization_rejects_non_ascii_digit_timestamps(timestamp):
    """The docstring promises None for anything but `sid|yyyyMMddHHmmss` (ASCII digits)."""
    assert parse_authorization(_b64(f"{SID}|{timestamp}")) is None


# ---- timestamp_in_window --------------------------------------------------------------------


def _at(ts: str) -> datetime:
    return datetime.strptime(ts, "%Y%m%d%H%M%S").replace(tzinfo=SHANGHAI)


def test_window_contains_now():
    assert timestamp_in_window(TS, _at(TS), SHANGHAI, DAY)


@pytest.mark.parametrize("delta", [DAY, -DAY, DAY - 1, -(DAY - 1), 0])
def test_window_is_inclusive(delta):
    now = _at(TS) + timedelta(seconds=delta)
    assert timestamp_in_window(TS, now, SHANGHAI, DAY)


@pytest.mark.parametrize("delta", [DAY + 1, -(DAY + 1), 3 * DAY])
def test_window_excludes_beyond_24h(delta):
    now = _at(TS) + timedelta(seconds=delta)
    assert not timestamp_in_window(TS, now, SHANGHAI, DAY)


def test_window_can_be_tightened_to_ten_minutes():
    assert timestamp_in_window(TS, _at(TS) + timedelta(minutes=10), SHANGHAI, 600)
    assert not timestamp_in_window(TS, _at(TS) + timedelta(minutes=10, seconds=1), SHANGHAI, 600)
    assert not timestamp_in_window(TS, _at(TS) - timedelta(minutes=11), SHANGHAI, 600)


def test_window_interprets_timestamp_in_the_zone():
    # 14:20:30 in Shanghai (UTC+8) is 06:20:30 UTC.
    now_utc = datetime(2014, 4, 16, 6, 20, 30, tzinfo=UTC)
    assert timestamp_in_window(TS, now_utc, SHANGHAI, 0)
    # The same wall clock read in UTC is 8 hours away.
    assert not timestamp_in_window(TS, now_utc, ZoneInfo("UTC"), 3600)
    assert timestamp_in_window(TS, now_utc + timedelta(hours=8), ZoneInfo("UTC"), 0)


@pytest.mark.parametrize("bad", ["20141316142030", "20140230142030", "20140416250000", "", "x"])
def test_window_rejects_impossible_timestamps(bad):
    assert not timestamp_in_window(bad, _at(TS), SHANGHAI, 10 * 365 * DAY)


# ---- helpers --------------------------------------------------------------------------------


def test_format_timestamp_converts_to_zone():
    assert format_timestamp(datetime(2014, 4, 16, 6, 20, 30, tzinfo=UTC), SHANGHAI) == TS


def test_signed_headers_are_consistent():
    now = datetime(2014, 4, 16, 6, 20, 30, tzinfo=UTC)
    headers, sign = signed_headers(SID, TOKEN, now, SHANGHAI)
    assert headers["Authorization"] == VECTOR_AUTHORIZATION
    assert sign == VECTOR_SIGN.upper()
    assert headers["Content-Type"].startswith("application/json")
    parsed = parse_authorization(headers["Authorization"])
    assert parsed is not None
    assert timestamp_in_window(parsed.timestamp, now, SHANGHAI, 0)
    assert sign_matches(sign, SID, TOKEN, parsed.timestamp)


@given(st.text(alphabet="0123456789", min_size=14, max_size=14))
def test_timestamp_parse_agrees_with_strptime(stamp: str) -> None:
    """The hand-sliced parse accepts exactly what `strptime` accepts, as the same moment."""
    try:
        expected: datetime | None = datetime.strptime(stamp, TIMESTAMP_FORMAT)
    except ValueError:
        expected = None
    assert parse_timestamp(stamp) == expected


@pytest.mark.parametrize(
    "stamp", ["2026120608150", "2026120608150x", "２０２６１２０６０８１５００", ""]
)
def test_timestamp_parse_refuses_non_stamps(stamp: str) -> None:
    assert parse_timestamp(stamp) is None
