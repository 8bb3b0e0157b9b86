"""The CDR pull (CallCdr.wx) against running servers: paging while CDRs are being written, a
request's own CDRs, an hour's CDRs, and never another account's (issue 12, item 2)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from telemeeting.client import AsyncClient, CdrCursor, Client
from tests.servers import Api, Reply, Server

SHANGHAI = ZoneInfo("Asia/Shanghai")
NORMAL = "13800138000"


def busy(n: int) -> str:
    """A distinct number the simulated carrier reports busy at once: one CDR, quickly."""
    return f"13{n:05d}0486"


def pull(api: Api, env: str = "production", version: str = "201512", **params: Any) -> Reply:
    return api.post(
        {"action": "getCdrByResId", **params}, env=env, func_url="CallCdr.wx", version=version
    )


def by_time(api: Api, day: str, hour: int, env: str = "production") -> Reply:
    return api.post(
        {"action": "getCdrByTime", "pdate": day, "ptime": hour}, env=env, func_url="CallCdr.wx"
    )


def wait_for_cdrs(api: Api, request_id: str, count: int, env: str = "production") -> list[Any]:
    deadline = time.monotonic() + 10
    while True:
        found = pull(api, env, lastresid=request_id, limit=0).body["cdr"]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_paging_over_250_cdrs_while_more_are_written(server: Server) -> None:
    """Four writers invite one busy party at a time (one CDR per requestid) while a reader pages
    through with lastresid and a small limit: every CDR arrives exactly once, in id order."""
    api = Api(server, server.new_tenant())
    meids = [api.create_meeting(env="production") for _ in range(4)]
    written: list[str] = []
    lock = threading.Lock()

    def write(index: int, meid: str) -> None:
        for i in range(70):
            reply = api.invite(meid, busy(index * 1000 + i), env="production")
            assert reply.code == "0", reply.body
            with lock:
                written.append(reply.body["requestId"])

    writers = [threading.Thread(target=write, args=(i, m)) for i, m in enumerate(meids)]
    for writer in writers:
        writer.start()
    seen: list[str] = []
    last = "0"
    pages_while_writing = 0
    while True:
        writing = any(writer.is_alive() for writer in writers)
        reply = pull(api, lastresid=last, limit=7)
        assert reply.code == "0", reply.body
        page = reply.body["cdr"]
        seen.extend(cdr["requestid"] for cdr in page)
        if page:
            last = page[-1]["requestid"]
            pages_while_writing += writing
        elif not writing and len(seen) >= len(written):
            break
        elif not writing and len(seen) < len(written):
            time.sleep(0.05)  # the last busy legs are still ending
        if len(page) < 7:
            time.sleep(0.02)
    assert len(written) == 280
    assert len(seen) == len(set(seen)), "a CDR came twice"
    assert set(seen) == set(written), "a CDR is missing"
    assert pages_while_writing >= 5


def test_lookup_by_request_and_the_201612_path(api: Api) -> None:
    meid = api.create_meeting(env="production")
    invited = api.invite(meid, busy(1), busy(2), busy(3), env="production")
    request_id = invited.body["requestId"]
    found = wait_for_cdrs(api, request_id, 3)
    assert sorted(cdr["called"] for cdr in found) == [busy(1), busy(2), busy(3)]
    for cdr in found:
        assert list(cdr) == [
            "requestid",
            "appid",
            "meid",
            "caller",
            "called",
            "calledstime",
            "calledetime",
            "duration",
            "oriamount",
            "customParm",
            "stateDesc",
            "tapesurl",
        ]
        assert (cdr["requestid"], cdr["meid"], cdr["stateDesc"]) == (
            request_id,
            meid,
            "未应答|用户忙",
        )
        assert (cdr["calledstime"], cdr["duration"], cdr["oriamount"]) == ("", 0, 0.0)
    again = pull(api, version="201612", lastresid=request_id, limit=0)
    assert again.body["cdr"] == found
    assert list(again.body) == ["statusCode", "statusMsg", "requestId", "cdr"]
    assert pull(api, lastresid="20991231000000000000000000000", limit=0).body["cdr"] == []


def test_cdrs_match_their_pushes(api: Api) -> None:
    meid = api.create_meeting(env="production", creator=NORMAL)
    api.wait_for(meid, lambda m: m["members"][0]["state"] == "answer", env="production")
    api.post({"action": "destroyMeeting", "confid": meid}, env="production")
    events = api.post(
        {"action": "queryMeetingEvents", "confid": meid},
        env="production",
        func_url="MeetingQuery.wx",
    ).body["events"]
    [pushed] = [e["body"]["cdr"][0] for e in events if e["type"] == "Call"]
    assert pull(api, lastresid=pushed["requestid"], limit=0).body["cdr"] == [pushed]


def test_bad_requests(api: Api) -> None:
    assert pull(api, limit=5).code == "-2"  # no lastresid
    assert pull(api, lastresid="0", limit=0).code == "-101"
    assert pull(api, lastresid="0", limit=1001).code == "-101"
    unknown = pull(api, lastresid="20991231000000000000000000000", limit=5)
    assert unknown.code == "-101"
    assert api.post({"action": "getCdrByTime"}, func_url="CallCdr.wx").code == "-2"
    assert by_time(api, "2026-13-01", 1).code == "-101"
    assert by_time(api, "20261201", 24).code == "-101"
    assert api.post({"action": "queryMeeting"}, func_url="CallCdr.wx").code == "-3"
    wrong_func = pull(api, lastresid="0", limit=5, version="201612")
    assert wrong_func.code == "0"


def test_another_accounts_cdrs_are_never_returned(server: Server) -> None:
    mine = Api(server, server.new_tenant())
    theirs = Api(server, server.new_tenant())
    meid = theirs.create_meeting(env="production")
    secret = theirs.invite(meid, busy(7), env="production").body["requestId"]
    assert len(wait_for_cdrs(theirs, secret, 1)) == 1
    # A sandbox CDR of my own is not in the production pull either.
    sandbox_meid = mine.create_meeting()
    sandbox = mine.invite(sandbox_meid, busy(8)).body["requestId"]
    assert len(wait_for_cdrs(mine, sandbox, 1, env="sandbox")) == 1

    everything = pull(mine, lastresid="0", limit=1000).body["cdr"]
    assert secret not in {cdr["requestid"] for cdr in everything}
    assert sandbox not in {cdr["requestid"] for cdr in everything}
    assert pull(mine, lastresid=secret, limit=0).body["cdr"] == []
    assert pull(mine, lastresid=secret, limit=10).code == "-101"
    now = datetime.now(SHANGHAI)
    for moment in (now, now - timedelta(hours=1)):
        hour = by_time(mine, moment.strftime("%Y%m%d"), moment.hour).body["cdr"]
        assert secret not in {cdr["requestid"] for cdr in hour}


def test_cdrs_by_hour(api: Api) -> None:
    before = datetime.now(SHANGHAI)
    meid = api.create_meeting(env="production")
    request_id = api.invite(meid, busy(11), busy(12), env="production").body["requestId"]
    assert len(wait_for_cdrs(api, request_id, 2)) == 2
    after = datetime.now(SHANGHAI)
    found: list[dict[str, Any]] = []
    hours = {(before.date(), before.hour), (after.date(), after.hour)}
    for day_of, hour in hours:
        for day in (day_of.strftime("%Y%m%d"), day_of.strftime("%Y-%m-%d")):
            reply = by_time(api, day, hour)
            assert reply.code == "0", reply.body
            found.extend(c for c in reply.body["cdr"] if c["requestid"] == request_id)
    # Each hour was asked in both date formats: each CDR shows up twice (once per format).
    assert sorted(c["called"] for c in found) == sorted([busy(11), busy(12)] * 2)
    yesterday = before - timedelta(days=1)
    other = by_time(api, yesterday.strftime("%Y%m%d"), yesterday.hour).body["cdr"]
    assert request_id not in {c["requestid"] for c in other}


# ---- the SDK -----------------------------------------------------------------------------------


def _client(server: Server, api: Api) -> Client:
    tenant = api.tenant
    return Client(tenant.sid, tenant.token, tenant.production_app, server.production_url)


def test_sdk_pages_exactly_through_cdrs_that_share_a_requestid(server: Server) -> None:
    """Every party of one request shares its requestid; the SDK's cursor (requestid and called,
    an extension) still pages through them exactly, at any page size."""
    api = Api(server, server.new_tenant(balance=5))
    expected = set()
    for batch in range(4):
        phones = [busy(batch * 100 + i) for i in range(20)]
        meid = api.create_meeting(env="production", parties=[{"phone": p} for p in phones])
        expected |= set(phones)
        assert meid
    with _client(server, api) as client:
        deadline = time.monotonic() + 10
        while len(client.cdrs(limit=1000)) < 80 and time.monotonic() < deadline:
            time.sleep(0.05)
        for page_size in (1, 7, 20, 1000):
            records = list(client.iter_cdrs(page_size=page_size))
            assert [r.called for r in records].count(records[0].called) == 1
            assert {r.called for r in records} == expected
            assert len(records) == 80
        middle = client.cdrs(limit=30)[-1]
        rest = client.cdrs(CdrCursor.after(middle), limit=1000)
        assert len(rest) == 50
        one = client.cdrs_of_request(middle.request_id)
        assert len(one) == 20 and all(r.request_id == middle.request_id for r in one)
        now = datetime.now(SHANGHAI)
        hour = client.cdrs_in_hour(now.date(), now.hour) + client.cdrs_in_hour(
            (now - timedelta(hours=1)).strftime("%Y-%m-%d"), (now - timedelta(hours=1)).hour
        )
        assert {r.called for r in hour} == expected
        balance = client.balance()
        assert balance.account_sid == api.tenant.sid and str(balance.balance) == "5.00"
        assert not balance.unlimited


def test_async_sdk(server: Server) -> None:
    env = "production"
    api = Api(server, server.new_tenant())
    meid = api.create_meeting(env=env)
    request_id = api.invite(meid, busy(21), busy(22), env=env).body["requestId"]
    assert len(wait_for_cdrs(api, request_id, 2)) == 2
    tenant = api.tenant

    async def use() -> None:
        async with AsyncClient(
            tenant.sid, tenant.token, tenant.production_app, server.production_url
        ) as client:
            assert (await client.balance()).unlimited
            records = [r async for r in client.iter_cdrs(page_size=1)]
            assert sorted(r.called for r in records) == [busy(21), busy(22)]
            assert len(await client.cdrs_of_request(request_id)) == 2
            assert len(await client.cdrs(CdrCursor.after(records[0]))) == 1
            now = datetime.now(SHANGHAI)
            hour = await client.cdrs_in_hour(now.strftime("%Y%m%d"), now.hour)
            assert isinstance(hour, list)

    asyncio.run(use())
