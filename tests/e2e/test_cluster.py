"""Several `telemeeting serve` processes on one PostgreSQL database (issue 10), with sipp UASes
as the trunk: carrier orders reach the node that owns the calls, failover ends the calls of a
killed node exactly once, booked meetings start once with two clocks, `--workers` shares the
ports and the account's rate limit."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.receiver import Receiver
from tests.servers import (
    Api,
    Server,
    cli_json,
    create_pg_database,
    drop_pg_database,
    free_port,
    member,
    start_server,
)
from tests.sip.peers import Sipp, free_ports

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]

CLUSTER = {
    "TELEMEETING_CLUSTER_LEASE_SECONDS": "3",
    "TELEMEETING_CALLBACKS_TIMEOUT_SECONDS": "2",  # a dead node's claimed pushes return in 7 s
    "TELEMEETING_CLUSTER_HEARTBEAT_SECONDS": "0.5",
    "TELEMEETING_CALLBACKS_RETRY_INITIAL_SECONDS": "0.2",
    "TELEMEETING_CALLBACKS_RETRY_MAX_SECONDS": "0.5",
}


@pytest.fixture
def pg_db() -> Iterator[str]:
    url = create_pg_database()
    yield url
    drop_pg_database(url)


def _sip_config(path: Path, routes: dict[str, Sipp]) -> Path:
    """Each server its own SIP and RTP ports; the same routes (whoever owns a meeting dials)."""
    (sip_port,) = free_ports(1)
    (rtp_base,) = free_ports(1, span=40)
    text = (
        f'[sip]\nlocal_host = "127.0.0.1"\nlocal_port = {sip_port}\n'
        f"rtp_port_min = {rtp_base}\nrtp_port_max = {rtp_base + 39}\n\n"
    )
    for number, sipp in routes.items():
        text += f'[[sip.routes]]\nmatch = "^{number}$"\ntarget = "sip:{number}@{sipp.uri_host}"\n\n'
    path.write_text(text)
    return path


def _invites(sipp: Sipp) -> int:
    """How many distinct calls (INVITE Call-IDs) reached this UAS."""
    log = sipp.messages.read_text(errors="replace") if sipp.messages.exists() else ""
    calls = set()
    for block in log.split("INVITE sip:")[1:]:
        found = re.search(r"(?im)^Call-ID:\s*(\S+)", block)
        if found:
            calls.add(found.group(1))
    return len(calls)


def _owner_and_other(db: str, servers: list[Server]) -> tuple[Server, Server]:
    """The server whose node owns the (one) active meeting, and the other one."""
    owning = [row["id"] for row in cli_json("nodes", db=db) if row["meetings"] > 0]
    assert len(owning) == 1, owning
    port = int(owning[0].rsplit(":", 1)[1])
    owner = next(server for server in servers if server.port == port)
    return owner, next(server for server in servers if server is not owner)


def _start(db: str, tmp: Path, name: str, config: Path | None = None, **env: str) -> Server:
    args = ("--config", str(config)) if config else ()
    workdir = tmp / name
    workdir.mkdir(exist_ok=True)
    return start_server(db, workdir, env={**CLUSTER, **env}, extra_args=args)


def _all_answered(meeting: dict) -> bool:
    return all(m["state"] == "answer" for m in meeting["members"])


def _destroy(api: Api, meid: str) -> str:
    return api.post({"action": "destroyMeeting", "confid": meid}, env="production").code


def _disconnects(pushes: list, phone: str) -> list:
    return [
        p
        for p in pushes
        if p.kind == "CallState" and p.body["dsc"] == phone and p.body["state"] == "disconnect"
    ]


def _cdrs(pushes: list, phone: str) -> list:
    return [p for p in pushes if p.kind == "Call" and p.body["cdr"][0]["called"] == phone]


@pytest.mark.sipp
def test_orders_reach_the_owner_and_failover_ends_calls_once(pg_db: str, tmp_path: Path) -> None:
    numbers = [f"1380000{index:04d}" for index in range(1, 6)]
    sipps = {n: Sipp(tmp_path, "answer.xml", "-rtp_echo") for n in numbers}
    receiver = Receiver(free_port())
    b = _start(pg_db, tmp_path, "b", _sip_config(tmp_path / "b.toml", sipps))
    a = _start(pg_db, tmp_path, "a", _sip_config(tmp_path / "a.toml", sipps))
    try:
        tenant = a.new_tenant()
        tenant.production_app = a.make_app(
            tenant.sid, "production", callback_url=f"http://127.0.0.1:{receiver.port}/cb"
        )
        via_a, via_b = Api(a, tenant), Api(b, tenant)
        nodes = cli_json("nodes", db=pg_db)
        assert len(nodes) == 2 and all("media" in row["roles"] for row in nodes)

        # 1. Controlled only through the node that does not own the calls.
        one, two = numbers[0], numbers[1]
        meid = via_b.create_meeting(env="production", parties=[{"phone": one}, {"phone": two}])
        owner, other = _owner_and_other(pg_db, [a, b])
        via_other = Api(other, tenant)
        meeting = via_other.wait_for(meid, _all_answered, "production", 20)
        assert _all_answered(meeting), meeting
        for action, phone in (("muteMeetingMember", one), ("kickMeetingMember", two)):
            reply = via_other.post(
                {"action": action, "confid": meid, "phone": phone}, env="production"
            )
            assert reply.code == "0", reply.body
        assert asyncio.run(sipps[two].wait(15)) == 0, sipps[two].log()  # the kick's BYE
        assert _destroy(via_other, meid) == "0"
        assert asyncio.run(sipps[one].wait(15)) == 0, sipps[one].log()  # the end's BYE
        assert _invites(sipps[one]) == 1 and _invites(sipps[two]) == 1

        # 2. The owner dies during calls: the other takes the meeting over, ends each call
        # once, and dials the next invitation itself.
        three, four, five = numbers[2], numbers[3], numbers[4]
        meid = via_a.create_meeting(env="production", parties=[{"phone": three}, {"phone": four}])
        owner, survivor = _owner_and_other(pg_db, [a, b])
        via_survivor = Api(survivor, tenant)
        meeting = via_survivor.wait_for(meid, _all_answered, "production", 20)
        assert _all_answered(meeting), meeting
        os.kill(owner.process.pid, signal.SIGKILL)
        owner.process.wait(10)
        killed = time.monotonic()
        pushes = receiver.wait_for(
            lambda ps: all(_disconnects(ps, p) and _cdrs(ps, p) for p in (three, four)), 15
        )
        assert time.monotonic() - killed < 15
        for phone in (three, four):
            (final,) = _disconnects(pushes, phone)
            assert final.body["stateDesc"] == "应答|呼叫失败"
        meeting = via_survivor.query(meid, "production")
        assert meeting["state"] == "active"
        reply = via_survivor.post(
            {"action": "inviteJoinMeeting", "confid": meid, "parties": [{"phone": five}]},
            env="production",
        )
        assert reply.code == "0", reply.body
        via_survivor.wait_for(
            meid, lambda m: member(m, five)["state"] == "answer", "production", 20
        )
        assert _destroy(via_survivor, meid) == "0"
        assert asyncio.run(sipps[five].wait(15)) == 0, sipps[five].log()
        time.sleep(1.0)  # any duplicate would have arrived by now
        pushes = receiver.pushes()
        for phone in (three, four, five):
            assert len(_disconnects(pushes, phone)) == 1 and len(_cdrs(pushes, phone)) == 1
            assert _invites(sipps[phone]) == 1, phone
    finally:
        for server in (a, b):
            server.stop()
        for sipp in sipps.values():
            sipp.stop()
        receiver.stop()


def test_a_booked_meeting_starts_once_with_two_clocks(pg_db: str, tmp_path: Path) -> None:
    servers = [_start(pg_db, tmp_path, name) for name in ("one", "two")]
    try:
        api = Api(servers[0], servers[0].new_tenant())
        start = datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(seconds=3)
        meid = api.create_meeting(
            bookmeeting="1",
            booktime=start.strftime("%Y%m%d%H%M%S"),
            parties=[{"phone": "13800138000"}, {"phone": "13800138001"}],
        )
        api.wait_for(meid, lambda m: m["state"] == "active", timeout=15)
        time.sleep(2.0)  # both clocks have looked at it more than once
        events = api.post(
            {"action": "queryMeetingEvents", "confid": meid}, func_url="MeetingQuery.wx"
        ).body["events"]
        kinds = Counter(
            (e["type"], e["body"].get("state"), e["body"].get("dsc", "")) for e in events
        )
        started = [k for k in kinds if k[0] == "MeetingState" and k[1] == "start"]
        assert started and all(kinds[k] == 1 for k in started), kinds
        for phone in ("13800138000", "13800138001"):
            assert kinds[("CallState", "callout", phone)] == 1, kinds
    finally:
        for server in servers:
            server.stop()


def test_workers_share_the_ports_and_the_rate_limit(pg_db: str, tmp_path: Path) -> None:
    limits = {"TELEMEETING_LIMITS_REQUESTS_PER_SECOND": "20", "TELEMEETING_LIMITS_BURST": "20"}
    server = _start(pg_db, tmp_path, "w", None, **limits)
    server.stop()  # the plain start provisions nothing; restart with two API workers
    server = start_server(pg_db, tmp_path, env={**CLUSTER, **limits}, extra_args=("--workers", "2"))
    try:
        api = Api(server, server.new_tenant())
        nodes = cli_json("nodes", db=pg_db)
        assert sum("api" in row["roles"] for row in nodes) == 2, nodes
        # Two seconds to drain the bursts, then eight seconds of steady overload measured.
        warm_up, seconds = 2.0, 8.0
        began = time.monotonic()
        body = {"action": "queryMeeting", "confid": "1"}

        def hammer() -> list[tuple[float, str]]:
            seen = []
            while time.monotonic() < began + warm_up + seconds:
                sent = time.monotonic()
                # A new connection per request: the kernel spreads them over both workers.
                seen.append((sent, api.post(body, func_url="MeetingQuery.wx").code))
            return seen

        codes: Counter = Counter()
        with ThreadPoolExecutor(8) as pool:
            for seen in pool.map(lambda _: hammer(), range(8)):
                codes.update(code for sent, code in seen if sent >= began + warm_up)
        admitted = sum(n for code, n in codes.items() if code != "-104")
        expected = 20 * seconds  # the configured rate, for the whole cluster
        assert codes["-104"] > 0.2 * admitted, codes  # offered well above the limit
        assert abs(admitted - expected) <= 0.1 * expected, codes
        pids = {int(line.split()[0]) for line in os.popen(f"pgrep -P {server.process.pid}")}
        assert len(pids) >= 2
    finally:
        server.stop()


def test_nodes_lists_roles_and_heartbeats(pg_db: str, tmp_path: Path) -> None:
    server = _start(pg_db, tmp_path, "n", None)
    try:
        (row,) = cli_json("nodes", db=pg_db)
        assert row["roles"] == "api,media,dispatcher,clock" and row["live"]
        assert row["heartbeat_age_seconds"] < 3 and row["address"]
        response = httpx.get(f"{server.production_url}/healthz", timeout=5)
        assert response.status_code == 200
    finally:
        server.stop()
    assert cli_json("nodes", db=pg_db) == []  # a clean stop leaves the cluster
