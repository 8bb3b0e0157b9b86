"""A booking must lie within `[meetings] booking_horizon_days` (default 366): hardening found
a `booktime` in the year 9999 accepted (issue 11)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.servers import Api

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize("booktime", ["99991231235959", "2099-01-01 00:00:00"])
def test_a_booking_beyond_the_horizon_is_refused(api: Api, booktime: str) -> None:
    reply = api.post(
        {"action": "createMeeting", "bookmeeting": "1", "booktime": booktime}, env="sandbox"
    )
    assert reply.code == "-101", reply.body


def test_a_booking_within_the_horizon_is_accepted(api: Api) -> None:
    soon = datetime.now(SHANGHAI) + timedelta(days=300)
    reply = api.post(
        {"action": "createMeeting", "bookmeeting": "1", "booktime": soon.strftime("%Y%m%d%H%M%S")},
        env="sandbox",
    )
    assert reply.code == "0", reply.body
