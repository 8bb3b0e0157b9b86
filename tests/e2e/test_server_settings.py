"""Behaviour that depends on configuration: each test starts its own server."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.servers import Api, Server, member, start_server

NORMAL = "13800138000"


@contextmanager
def running(db: str, tmp_path: Path, **env: str) -> Iterator[tuple[Server, Api]]:
    server = start_server(db, tmp_path, env=env)
    try:
        yield server, Api(server, server.new_tenant())
    finally:
        server.stop()


def test_rate_limit_is_104_per_account(sqlite_db: str, tmp_path: Path) -> None:
    with running(
        sqlite_db,
        tmp_path,
        TELEMEETING_LIMITS_REQUESTS_PER_SECOND="0.5",
        TELEMEETING_LIMITS_BURST="3",
    ) as (server, api):
        query = {"action": "queryMeeting", "confid": "x"}
        codes = [api.post(query).code for _ in range(3)]
        assert codes == ["-300"] * 3  # the burst
        limited = api.post(query)
        assert (limited.code, limited.msg, limited.body["requestId"]) == (
            "-104",
            "请求频率过高",
            "",
        )
        other = Api(server, server.new_tenant())  # another account has its own bucket
        assert other.post(query).code == "-300"
        time.sleep(2.2)  # one token back at 0.5 per second
        assert api.post(query).code == "-300"


def test_trusted_proxy_forwarded_for_decides_whitelist(sqlite_db: str, tmp_path: Path) -> None:
    with running(sqlite_db, tmp_path, TELEMEETING_SERVER_TRUSTED_PROXIES='["127.0.0.1"]') as (
        server,
        api,
    ):
        appid = server.make_app(api.tenant.sid, "production", ip_whitelist="203.0.113.0/24")
        query = {"action": "queryMeeting", "confid": "x", "appid": appid}
        assert api.post(query, env="production").code == "-205"  # the proxy itself
        ok = api.post(query, env="production", headers={"X-Forwarded-For": "203.0.113.9"})
        assert ok.code == "-300"
        # a client cannot smuggle an address in front of what the proxy appended
        spoofed = api.post(
            query, env="production", headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.1"}
        )
        assert spoofed.code == "-205"


def test_tightened_timestamp_window(sqlite_db: str, tmp_path: Path) -> None:
    from datetime import timedelta

    from tests.servers import now_timestamp

    with running(sqlite_db, tmp_path, TELEMEETING_AUTH_TIMESTAMP_WINDOW_SECONDS="600") as (_, api):
        query = {"action": "queryMeeting", "confid": "x"}
        assert api.post(query, timestamp=now_timestamp(timedelta(minutes=-9))).code == "-300"
        assert api.post(query, timestamp=now_timestamp(timedelta(minutes=-11))).code == "-202"


def test_meeting_ends_at_max_duration(sqlite_db: str, tmp_path: Path) -> None:
    with running(sqlite_db, tmp_path, TELEMEETING_MEETINGS_MAX_DURATION_SECONDS="2") as (_, api):
        meid = api.create_meeting(parties=[{"phone": NORMAL}])
        meeting = api.wait_for(meid, lambda m: m["state"] == "ended", timeout=10)
        assert member(meeting, NORMAL)["stateDesc"] == "应答|会议结束"


def test_environment_by_host_header(sqlite_db: str, tmp_path: Path) -> None:
    with running(sqlite_db, tmp_path, TELEMEETING_SERVER_ENVIRONMENT_BY="host") as (_, api):
        query = {"action": "queryMeeting", "confid": "x"}
        # on the production port, but addressed as sandbox.ytx.net
        sandbox = api.post(query, env="production", headers={"Host": "sandbox.ytx.net"})
        assert sandbox.code == "-205"  # the body's appid is the production app
        body = {**query, "appid": api.tenant.sandbox_app}
        assert api.post(body, env="production", headers={"Host": "sandbox.ytx.net"}).code == "-300"
        assert api.post(query, env="production", headers={"Host": "api.ytx.net"}).code == "-300"


def test_restart_ends_calls_that_were_up_once_each(fresh_db: str, tmp_path: Path) -> None:
    """A SIGKILL loses the calls, never their records: each live leg gets one terminal event."""
    node = {"TELEMEETING_SERVER_NODE_ID": "node-a"}  # the same node, restarted on another port
    server = start_server(fresh_db, tmp_path, env=node)
    api = Api(server, server.new_tenant())
    meid = api.create_meeting(parties=[{"phone": NORMAL}, {"phone": "13800000408"}])
    api.wait_for(meid, lambda m: member(m, NORMAL)["state"] == "answer")
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)
    server = start_server(fresh_db, tmp_path, env=node)
    try:
        api = Api(server, api.tenant)
        meeting = api.wait_for(meid, lambda m: m["state"] == "ended")
        assert [m["stateDesc"] for m in meeting["members"]] == ["应答|呼叫失败", "未应答|呼叫失败"]
        events = api.post(
            {"action": "queryMeetingEvents", "confid": meid}, func_url="MeetingQuery.wx"
        ).body["events"]
        ends = [
            e for e in events if e["type"] == "CallState" and e["body"]["state"] == "disconnect"
        ]
        assert len(ends) == 2
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        last = events[-1]["body"]
        assert (last["state"], last["reason"]) == ("end", "recovered")
    finally:
        server.stop()


def test_serve_refuses_a_port_in_use(sqlite_db: str, tmp_path: Path) -> None:
    with running(sqlite_db, tmp_path) as (server, _):
        import subprocess
        import sys

        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "telemeeting",
                "serve",
                "--db",
                sqlite_db,
                "--port",
                str(server.port),
                "--sandbox-port",
                "0",
                "--no-demo",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1
        assert f"cannot listen on 127.0.0.1:{server.port}" in result.stderr
        assert "Traceback" not in result.stderr
        assert httpx.get(server.production_url + "/").status_code == 404  # still serving
