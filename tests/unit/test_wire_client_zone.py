"""Inferring a client's time zone from its Authorization timestamp (docs/api.md, "Time zones").

Many ytx clients stamp Authorization and booktime with their host's clock, whatever its zone.
The offset is the stamp minus UTC now, to the nearest 15 minutes, within ±14 h; the window
check that decides -202 does not change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telemeeting.wire.auth import (
    CLIENT_OFFSET_STEP,
    MAX_CLIENT_OFFSET,
    TIMESTAMP_FORMAT,
    ClientClock,
    client_utc_offset,
    client_zone,
    timestamp_in_window,
)
from telemeeting.wire.times import parse_wall_clock

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = 24 * 3600
QUARTER = CLIENT_OFFSET_STEP
#: -14:00 … +14:00 in quarter hours.
offsets = st.integers(min_value=-56, max_value=56).map(lambda q: q * QUARTER)
#: Moments with microseconds, over years with and without leap seconds of interest.
moments = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
)
#: Clock skew the rounding absorbs: under 7.5 minutes either way, after truncation to seconds.
skews = st.integers(min_value=-449, max_value=449).map(lambda s: timedelta(seconds=s))


def stamp(moment: datetime, offset: timedelta) -> str:
    """What a client whose clock is `offset` from UTC writes at `moment` (truncated, as
    every client's yyyyMMddHHmmss is)."""
    return (moment.astimezone(UTC) + offset).strftime(TIMESTAMP_FORMAT)


def at(text: str) -> datetime:
    """A moment on the whole second (no microseconds), in UTC."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


NOW = at("2026-11-28 06:30:15")  # 14:30:15 in Beijing


# ---- the inference ----------------------------------------------------------------------------


@given(moments, offsets, skews)
def test_every_quarter_hour_zone_is_found_despite_skew(
    now: datetime, offset: timedelta, skew: timedelta
) -> None:
    assert client_utc_offset(stamp(now + skew, offset), now) == offset


@given(moments, st.integers(min_value=57, max_value=96), st.sampled_from([1, -1]))
def test_offsets_beyond_14_hours_are_not_zones(now: datetime, quarters: int, sign: int) -> None:
    assert client_utc_offset(stamp(now, sign * quarters * QUARTER), now) is None


@pytest.mark.parametrize(
    ("clock", "expected"),
    [
        ("2026-11-28 14:30:15", timedelta(hours=8)),  # Beijing
        ("2026-11-28 06:30:15", timedelta(0)),  # UTC
        ("2026-11-28 01:30:15", timedelta(hours=-5)),  # New York in winter
        ("2026-11-28 12:00:15", timedelta(hours=5, minutes=30)),  # India
        ("2026-11-28 12:15:15", timedelta(hours=5, minutes=45)),  # Nepal
        ("2026-11-28 20:30:15", timedelta(hours=14)),  # Kiribati, the edge
        ("2026-11-27 16:30:15", timedelta(hours=-14)),  # the other edge
        ("2026-11-28 20:45:15", None),  # +14:15
        ("2026-11-27 16:15:15", None),  # -14:15
        ("2026-11-28 20:37:15", timedelta(hours=14)),  # +14:07 rounds back inside
        ("2026-11-28 20:38:15", None),  # +14:08 rounds to +14:15
        ("2026-11-27 16:23:15", timedelta(hours=-14)),  # -13:53 … -14:07 is -14:00
        ("2026-11-27 16:22:15", None),  # -14:08 rounds to -14:15
    ],
)
def test_offsets_and_the_14_hour_edges(clock: str, expected: timedelta | None) -> None:
    timestamp = at(clock).strftime(TIMESTAMP_FORMAT)
    assert client_utc_offset(timestamp, NOW) == expected


@pytest.mark.parametrize(
    ("ahead", "expected_quarters"),
    [
        (timedelta(minutes=7, seconds=29), 0),
        (timedelta(minutes=7, seconds=30), 1),  # a tie rounds up, the same way every time
        (timedelta(minutes=7, seconds=31), 1),
        (timedelta(minutes=-7, seconds=-29), 0),
        (timedelta(minutes=-7, seconds=-30), 0),
        (timedelta(minutes=-7, seconds=-31), -1),
        (timedelta(minutes=22, seconds=29), 1),
        (timedelta(minutes=22, seconds=31), 2),
    ],
)
def test_rounding_to_the_nearest_quarter_hour(ahead: timedelta, expected_quarters: int) -> None:
    timestamp = (NOW + timedelta(hours=8) + ahead).strftime(TIMESTAMP_FORMAT)
    assert client_utc_offset(timestamp, NOW) == timedelta(hours=8) + expected_quarters * QUARTER


@pytest.mark.parametrize("timestamp", ["20261399000000", "20260230120000", "2026112814301", ""])
def test_not_a_timestamp_infers_nothing(timestamp: str) -> None:
    assert client_utc_offset(timestamp, NOW) is None
    assert client_zone(timestamp, NOW, SHANGHAI) is None


def test_bounds_are_what_the_documentation_says() -> None:
    assert timedelta(hours=14) == MAX_CLIENT_OFFSET
    assert timedelta(minutes=15) == QUARTER


# ---- the zone booktime is read in ---------------------------------------------------------------


def test_a_beijing_clock_is_read_in_the_servers_own_zone() -> None:
    assert client_zone(stamp(NOW, timedelta(hours=8)), NOW, SHANGHAI) is None


def test_other_clocks_get_a_fixed_offset() -> None:
    assert client_zone(stamp(NOW, timedelta(0)), NOW, SHANGHAI) == timezone(timedelta(0))
    india = client_zone(stamp(NOW, timedelta(hours=5, minutes=30)), NOW, SHANGHAI)
    assert india == timezone(timedelta(hours=5, minutes=30))


def test_a_server_zone_with_daylight_saving_keeps_its_rules() -> None:
    """A client on the server's own clock (here Berlin in summer) is read in the server's zone,
    so a booking across the change to winter time is still right."""
    berlin = ZoneInfo("Europe/Berlin")
    summer = at("2026-07-01 10:00:00")
    assert client_zone(stamp(summer, timedelta(hours=2)), summer, berlin) is None
    assert client_zone(stamp(summer, timedelta(hours=1)), summer, berlin) == timezone(
        timedelta(hours=1)
    )


@given(moments, offsets, st.integers(min_value=60, max_value=30 * DAY))
def test_a_booktime_stamped_on_the_clients_clock_means_the_moment_it_meant(
    now: datetime, offset: timedelta, seconds_ahead: int
) -> None:
    """The whole point: a client at any offset books "in N seconds" on its own clock, and the
    server reads the very moment it meant."""
    now = now.replace(microsecond=0)
    meant = now + timedelta(seconds=seconds_ahead)
    zone = client_zone(stamp(now, offset), now, SHANGHAI) or SHANGHAI
    assert parse_wall_clock(stamp(meant, offset), zone) == meant.timestamp()


def test_client_clock_infers_only_when_asked_and_once() -> None:
    clock = ClientClock(stamp(NOW, timedelta(0)), NOW, SHANGHAI)
    assert "zone" not in vars(clock)
    assert clock.zone == timezone(timedelta(0))
    assert vars(clock)["zone"] is clock.zone
    assert ClientClock(stamp(NOW, timedelta(hours=8)), NOW, SHANGHAI).zone is None


# ---- the window does not move -------------------------------------------------------------------


@given(moments, offsets)
def test_inference_does_not_change_the_window(now: datetime, offset: timedelta) -> None:
    """The window is still measured on Beijing time: with the default 24 hours every zone's
    stamp passes (UTC-14 … UTC+14 is Beijing -22 h … +6 h); a 10-minute window lets only
    clocks on Beijing time in, whatever the inference would say."""
    timestamp = stamp(now, offset)
    assert timestamp_in_window(timestamp, now, SHANGHAI, DAY)
    on_beijing_time = offset == timedelta(hours=8)
    assert timestamp_in_window(timestamp, now, SHANGHAI, 600) is on_beijing_time
