"""Database loss (issue 11 item 7): PostgreSQL backends killed under load, SQLite locked by
another process beyond the lock wait. Every in-flight request gets success or the documented
retryable answer (-104 with the database message), never -100 and never a non-envelope; the pool
recovers by itself within a second; what was accepted is in the database, whole, and what was
refused is there wholly or not at all (the connection may die during the COMMIT itself).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from telemeeting.store.database import sqlite_path
from telemeeting.wire.auth import make_authorization, make_sign
from telemeeting.wire.status import Status
from tests.servers import (
    PG_ADMIN_DSN,
    Api,
    Server,
    Tenant,
    database_url,
    drop_pg_database,
    now_timestamp,
    start_server,
)

pytestmark = pytest.mark.timeout(180)

UNAVAILABLE = Status.DATABASE_UNAVAILABLE
ENVELOPE_KEYS = ["statusCode", "statusMsg", "requestId"]
WORKERS = 8
STORM_SECONDS = 3.0
KILL_EVERY = 0.2


@dataclass
class Sent:
    action: str
    confid: str
    phones: tuple[str, ...]
    reply: dict[str, Any]
    body: dict[str, Any] | None = None


class Traffic:
    """Signed requests from the test, as raw envelopes (not through the SDK: the test judges
    exactly what came back)."""

    def __init__(self, server: Server, tenant: Tenant) -> None:
        self.base = server.sandbox_url
        self.tenant = tenant

    async def post(
        self,
        client: httpx.AsyncClient,
        body: dict[str, Any],
        func_url: str = "TeleMeeting.wx",
        key: str | None = None,
    ) -> dict[str, Any]:
        sid, token = self.tenant.sid, self.tenant.token
        stamp = now_timestamp()
        url = f"{self.base}/201612/sid/{sid}/call/{func_url}?Sign={make_sign(sid, token, stamp)}"
        headers = {
            "Authorization": make_authorization(sid, stamp),
            "Content-Type": "application/json;charset=utf-8",
        }
        if key is not None:
            headers["Idempotency-Key"] = key
        response = await client.post(
            url,
            content=json.dumps({"appid": self.tenant.sandbox_app, **body}).encode(),
            headers=headers,
        )
        answer = response.json()  # a non-JSON answer fails the test here
        assert isinstance(answer, dict) and list(answer)[:3] == ENVELOPE_KEYS, response.text
        return answer

    async def query(self, client: httpx.AsyncClient, confid: str) -> dict[str, Any]:
        return await self.post(
            client, {"action": "queryMeeting", "confid": confid}, func_url="MeetingQuery.wx"
        )


def _phones(worker: int, round_: int, kind: int) -> tuple[str, str]:
    base = f"139{worker:02d}{round_:04d}{kind}"
    return (f"{base}0", f"{base}1")


async def _worker(traffic: Traffic, worker: int, stop: asyncio.Event, sent: list[Sent]) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        round_ = 0
        while not stop.is_set():
            confid = f"dbloss{worker:02d}{round_:04d}"
            created = _phones(worker, round_, 0)
            body = {
                "action": "createMeeting",
                "confid": confid,
                "meetingname": "db loss",
                "parties": [{"name": "p", "phone": phone} for phone in created],
            }
            reply = await traffic.post(client, body, key=confid)
            sent.append(Sent("createMeeting", confid, created, reply, body))
            if reply["statusCode"] == "0":
                invited = _phones(worker, round_, 1)
                parties = [{"name": "q", "phone": phone} for phone in invited]
                body = {"action": "inviteJoinMeeting", "confid": confid, "parties": parties}
                reply = await traffic.post(client, body)
                sent.append(Sent("inviteJoinMeeting", confid, invited, reply))
                reply = await traffic.query(client, confid)
                sent.append(Sent("queryMeeting", confid, (), reply))
            round_ += 1


async def _kill_backends(database: str, until: float) -> tuple[int, float]:
    """Terminate every backend of `database` every KILL_EVERY s; (how many, when the last)."""
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN_DSN)
    killed, last = 0, time.monotonic()
    try:
        while time.monotonic() < until:
            rows = await admin.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
            killed += sum(1 for row in rows if row[0])
            last = time.monotonic()
            await asyncio.sleep(KILL_EVERY)
    finally:
        await admin.close()
    return killed, last


def _assert_answer(sent: Sent) -> None:
    code, message = sent.reply["statusCode"], sent.reply["statusMsg"]
    assert code == "0" or (code, message) == (UNAVAILABLE.code, UNAVAILABLE.message), sent


async def _assert_stored(traffic: Traffic, sent: list[Sent]) -> None:
    """Accepted: all its legs are stored. Refused: all of them or none."""
    async with httpx.AsyncClient(timeout=30) as client:
        meetings: dict[str, dict[str, Any]] = {}
        for confid in {s.confid for s in sent}:
            reply = await traffic.query(client, confid)
            assert reply["statusCode"] in ("0", Status.MEETING_NOT_FOUND.code), reply
            meetings[confid] = reply.get("meeting", {})
    for item in sent:
        if item.action == "queryMeeting":
            continue
        phones = {m["phone"] for m in meetings[item.confid].get("members", [])}
        present = [phone in phones for phone in item.phones]
        if item.reply["statusCode"] == "0":
            assert all(present), (item, phones)
        else:
            assert all(present) or not any(present), (item, phones)


async def _assert_repeats_are_safe(traffic: Traffic, sent: list[Sent]) -> None:
    """Every createMeeting sent again with its Idempotency-Key: the accepted ones answer their
    first answer, the refused ones run now (or, if their COMMIT did land, answer that one)."""
    creates = [s for s in sent if s.action == "createMeeting" and s.body is not None]
    async with httpx.AsyncClient(timeout=60) as client:
        for item in creates:
            assert item.body is not None
            reply = await traffic.post(client, item.body, key=item.confid)
            assert reply["statusCode"] == "0", (item, reply)
            if item.reply["statusCode"] == "0":
                assert reply == item.reply  # the first answer, byte for byte
            assert reply["meid"] == item.confid


@pytest.fixture
def pg_server(tmp_path: Path) -> Iterator[tuple[Server, Tenant]]:
    url = database_url("postgres", tmp_path)
    server = start_server(url, tmp_path)
    try:
        yield server, server.new_tenant()
    finally:
        server.stop()
        drop_pg_database(url)


@pytest.mark.postgres
def test_killed_postgres_connections_give_the_retryable_answer_and_lose_nothing(
    pg_server: tuple[Server, Tenant],
) -> None:
    server, tenant = pg_server
    traffic = Traffic(server, tenant)
    database = server.db.rsplit("/", 1)[1]
    sent: list[Sent] = []

    async def storm() -> tuple[int, float]:
        stop = asyncio.Event()
        workers = [asyncio.create_task(_worker(traffic, k, stop, sent)) for k in range(WORKERS)]
        killed, last_kill = await _kill_backends(database, time.monotonic() + STORM_SECONDS)
        stop.set()
        await asyncio.gather(*workers)
        return killed, last_kill

    killed, last_kill = asyncio.run(storm())
    refused = [s for s in sent if s.reply["statusCode"] != "0"]
    assert killed > 0 and refused, f"the storm hit nothing: {killed} killed, {len(sent)} sent"
    for item in sent:
        _assert_answer(item)

    # The pool recovers by itself: a request one second after the last kill succeeds, as do
    # all after it.
    time.sleep(max(0.0, last_kill + 1.0 - time.monotonic()))
    api = Api(server, tenant)
    any_meeting = next(s.confid for s in sent if s.reply["statusCode"] == "0")
    for _ in range(20):
        reply = api.post(
            {"action": "queryMeeting", "confid": any_meeting}, func_url="MeetingQuery.wx"
        )
        assert reply.code == "0", reply.body

    asyncio.run(_assert_stored(traffic, sent))
    asyncio.run(_assert_repeats_are_safe(traffic, sent))
    # The carrier's orders survived too: every accepted leg was dialled and answered.
    accepted = [s for s in sent if s.action != "queryMeeting" and s.reply["statusCode"] == "0"]
    for item in accepted:
        meeting = api.wait_for(
            item.confid,
            lambda m, item=item: all(
                any(x["phone"] == p and x["state"] == "answer" for x in m["members"])
                for p in item.phones
            ),
            timeout=20,
        )
        assert meeting


# ---- SQLite -----------------------------------------------------------------------------------

#: Past the server's lock wait (store/sqlite.py LOCK_WAIT_SECONDS, 30 s).
SQLITE_HOLD_SECONDS = 33.0


@pytest.mark.timeout(120)
def test_a_sqlite_database_locked_past_the_wait_gives_the_retryable_answer(
    tmp_path: Path,
) -> None:
    url = database_url("sqlite", tmp_path)
    server = start_server(url, tmp_path)
    try:
        tenant = server.new_tenant()
        api = Api(server, tenant)
        meid = api.create_meeting(meetingname="before the lock")
        # An operator's long write, in another process. It waits a moment for the lock itself:
        # the server writes now and then on its own (heartbeats, the rate limit's share).
        holder = sqlite3.connect(sqlite_path(url), isolation_level=None, timeout=5)
        holder.execute("BEGIN IMMEDIATE")
        replies: list[Any] = []

        def invite() -> None:
            replies.append(api.invite(meid, "13900000001"))

        try:
            started = time.monotonic()
            threads = [threading.Thread(target=invite) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(SQLITE_HOLD_SECONDS + 30)
            waited = time.monotonic() - started
            # Reads never wait for the writer (WAL): still answered while the lock is held.
            assert api.query(meid)["meid"] == meid
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert len(replies) == 3
        for reply in replies:
            assert (reply.code, reply.msg) == (UNAVAILABLE.code, UNAVAILABLE.message), reply.body
        # Each waited the lock wait once, not one after the other.
        assert waited < SQLITE_HOLD_SECONDS, waited
        assert not any(m["phone"] == "13900000001" for m in api.query(meid)["members"])
        assert api.invite(meid, "13900000001").code == "0"
    finally:
        server.stop()
