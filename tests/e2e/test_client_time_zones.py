"""Clients that stamp their own time zone (docs/api.md, "Time zones"), against a running server.

Most public ytx clients stamp `Authorization` and `booktime` with their host's clock. The
server infers the client's UTC offset from the Authorization timestamp and reads `booktime` in
it; an app's explicit `--timezone` overrides the inference.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from telemeeting.wire.auth import format_timestamp
from tests.servers import ZONE, Api, Server, Tenant, cli_json, run_cli

NORMAL = "13800138000"
#: Seconds ahead that the clients book: room for a few interpreters to start on a busy machine.
AHEAD = 5

#: A ytx client as the public ones are written (kubrick's `YTXReqAction`, the C# helper): the
#: host's local clock for both the Authorization timestamp and booktime, urllib, nothing else.
CLIENT = r"""
import base64, hashlib, json, math, sys, time, urllib.request
base, sid, token, appid, ahead = sys.argv[1:6]
now = time.time()
ts = time.strftime("%Y%m%d%H%M%S", time.localtime(now))
at = math.floor(now + float(ahead))
body = {"action": "createMeeting", "appid": appid, "bookmeeting": "1",
        "booktime": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)),
        "parties": [{"name": "张三", "phone": "13800138000"}]}
sign = hashlib.md5((sid + token + ts).encode()).hexdigest().upper()
request = urllib.request.Request(
    f"{base}/201612/sid/{sid}/call/TeleMeeting.wx?Sign={sign}",
    data=json.dumps(body, ensure_ascii=False).encode(),
    headers={"Accept": "application/json;", "Content-Type": "application/json;charset=utf-8;",
             "Authorization": base64.b64encode(f"{sid}|{ts}".encode()).decode()})
reply = json.loads(urllib.request.urlopen(request, timeout=30).read())
print(json.dumps({"reply": reply, "at": at, "sent": time.time()}))
"""


@dataclass
class Booking:
    label: str
    api: Api
    meid: str
    at: float  # the moment the client meant, Unix seconds


def _run_clients(server: Server, tenant: Tenant, zones: list[str]) -> dict[str, dict]:
    """One client process per zone, all at once, each with TZ set as on a host in that zone."""
    processes = {
        zone: subprocess.Popen(
            [
                sys.executable,
                "-c",
                CLIENT,
                server.sandbox_url,
                tenant.sid,
                tenant.token,
                tenant.sandbox_app,
                str(AHEAD),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "TZ": zone},
        )
        for zone in zones
    }
    results = {}
    for zone, process in processes.items():
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        results[zone] = json.loads(out)
    return results


def _started_at(booking: Booking) -> float:
    """When the booked meeting started: its MeetingState start event's timestamp."""
    booking.api.wait_for(booking.meid, lambda m: m["state"] != "booked", timeout=AHEAD + 15)
    reply = booking.api.post(
        {"action": "queryMeetingEvents", "confid": booking.meid}, func_url="MeetingQuery.wx"
    )
    starts = [
        e["body"]
        for e in reply.body["events"]
        if e["type"] == "MeetingState" and e["body"]["state"] == "start"
    ]
    assert [s["reason"] for s in starts] == ["booked"], reply.body
    wall = datetime.strptime(starts[0]["timestamp"], "%Y-%m-%d %H:%M:%S")
    return wall.replace(tzinfo=ZONE).timestamp()


def _assert_starts_on_time(bookings: list[Booking]) -> None:
    for booking in bookings:
        started = _started_at(booking)
        # The clock looks every 0.5 s; the event's time is whole seconds.
        assert booking.at <= started <= booking.at + 2, (booking.label, booking.at, started)


def _still_booked(booking: Booking) -> None:
    asked = time.time()
    state = booking.api.query(booking.meid)["state"]
    assert asked < booking.at, f"{booking.label}: too slow to see it booked"
    assert state == "booked", (booking.label, state)


def test_clients_on_hosts_in_other_zones_book_the_moment_they_mean(
    server: Server, tenant: Tenant, api: Api
) -> None:
    """UTC (this very host's zone), the Americas (16 h behind Beijing), India (+05:30), the +14
    edge, and Beijing itself: each books "in 5 seconds" on its own clock and the meeting starts
    then. Without the inference the UTC client's booking is 8 hours in the past: -101."""
    zones = ["UTC", "America/Los_Angeles", "Asia/Kolkata", "Pacific/Kiritimati", "Asia/Shanghai"]
    bookings = []
    for zone, result in _run_clients(server, tenant, zones).items():
        assert result["reply"]["statusCode"] == "0", (zone, result["reply"])
        bookings.append(Booking(zone, api, result["reply"]["meid"], result["at"]))
    for booking in bookings:
        _still_booked(booking)
    _assert_starts_on_time(bookings)


def _stamp(zone: str, seconds_ahead: float = 0) -> tuple[str, float]:
    """yyyyMMddHHmmss on a clock in `zone`, and the whole Unix second it names."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds_ahead)
    moment = moment.replace(microsecond=0)
    return format_timestamp(moment, ZoneInfo(zone)), moment.timestamp()


def _book(api: Api, auth_zone: str, book_zone: str) -> tuple[str, float, dict]:
    """A booking AHEAD seconds from now: Authorization on a clock in `auth_zone`, booktime on
    one in `book_zone`."""
    timestamp, _ = _stamp(auth_zone)
    booktime, at = _stamp(book_zone, AHEAD)
    body = {
        "action": "createMeeting",
        "bookmeeting": "1",
        "booktime": booktime,
        "parties": [{"phone": NORMAL}],
    }
    reply = api.post(body, timestamp=timestamp)
    return reply.code, at, reply.body


def test_an_apps_timezone_overrides_the_inference(server: Server, tenant: Tenant) -> None:
    """The operator pins an app's zone (create or update): booktime is read in it whatever
    zone the Authorization timestamp was stamped in."""
    new_york = cli_json(
        "app", "create", "--account", tenant.sid, "--env", "sandbox",
        "--timezone", "America/New_York", db=server.db,
    )  # fmt: skip
    assert new_york["timezone"] == "America/New_York"
    plain = cli_json("app", "create", "--account", tenant.sid, "--env", "sandbox", db=server.db)
    assert plain["timezone"] == ""
    kolkata = cli_json("app", "update", plain["appid"], "--timezone", "Asia/Kolkata", db=server.db)
    assert kolkata["timezone"] == "Asia/Kolkata"

    def api_for(appid: str) -> Api:
        return Api(server, Tenant(tenant.sid, tenant.token, appid, tenant.production_app))

    # Inference alone reads a New York booktime sent with a UTC stamp as UTC: hours ago.
    code, _, _ = _book(api_for(tenant.sandbox_app), "UTC", "America/New_York")
    assert code == "-101"
    bookings = []
    for label, app, auth_zone, book_zone in [
        ("New York app, UTC stamp", new_york["appid"], "UTC", "America/New_York"),
        ("New York app, Beijing stamp", new_york["appid"], "Asia/Shanghai", "America/New_York"),
        ("updated to Kolkata, UTC stamp", kolkata["appid"], "UTC", "Asia/Kolkata"),
    ]:
        app_api = api_for(app)
        code, at, body = _book(app_api, auth_zone, book_zone)
        assert code == "0", (label, body)
        bookings.append(Booking(label, app_api, body["meid"], at))
    for booking in bookings:
        _still_booked(booking)
    _assert_starts_on_time(bookings)

    cleared = cli_json("app", "update", plain["appid"], "--timezone", "", db=server.db)
    assert cleared["timezone"] == ""  # back to inferring


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus", "America", "../../etc/passwd", "utc", "Asia/Shanghai ", "+08:00"]
)
def test_a_bad_timezone_exits_1_with_a_clear_message(sqlite_db: str, zone: str) -> None:
    account = cli_json("account", "create", db=sqlite_db)
    created = run_cli(
        "app", "create", "--account", account["sid"], "--env", "sandbox", "--timezone", zone,
        db=sqlite_db, check=False,
    )  # fmt: skip
    app = cli_json("app", "create", "--account", account["sid"], "--env", "sandbox", db=sqlite_db)
    updated = run_cli("app", "update", app["appid"], "--timezone", zone, db=sqlite_db, check=False)
    for result in (created, updated):
        assert result.returncode == 1, result.stdout
        assert "unknown time zone" in result.stderr and "IANA" in result.stderr
        assert "Traceback" not in result.stderr
    shown = cli_json("app", "update", app["appid"], db=sqlite_db)
    assert shown["timezone"] == ""  # the refused update changed nothing
