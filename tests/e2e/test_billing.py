"""Billing against running servers: getBlance before and after a call, a call hung up when the
money runs out, -204 for dialling at zero, and a SIGKILL during leg ends (issue 12, item 3)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from telemeeting.store.sql import Statement
from telemeeting.store.unit_of_work import Database
from tests.servers import (
    Api,
    Reply,
    Server,
    cli_json,
    database_url,
    drop_pg_database,
    member,
    run_cli,
    start_server,
    with_database,
)

NORMAL, BUSY = "13800138000", "13800000486"
#: 2-second units at 0.50: a balance of 1.00 pays for 4 s of one call.
TWO_SECOND_UNITS = {
    "TELEMEETING_BILLING_UNIT_SECONDS": "2",
    "TELEMEETING_BILLING_PRICE_PER_UNIT": "0.5",
}


@pytest.fixture(scope="module")
def billed_server(db_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"billing-{db_kind}")
    url = database_url(db_kind, tmp)
    server = start_server(url, tmp, env=TWO_SECOND_UNITS)
    yield server
    server.stop()
    if db_kind == "postgres":
        drop_pg_database(url)


def balance(api: Api, env: str = "production") -> Reply:
    return api.post({"action": "queryBlance"}, env=env, func="account", func_url="getBlance.wx")


def cdrs_of(api: Api, request_id: str, env: str = "production") -> list[dict[str, Any]]:
    reply = api.post(
        {"action": "getCdrByResId", "lastresid": request_id, "limit": 0},
        env=env,
        func_url="CallCdr.wx",
        version="201512",
    )
    assert reply.code == "0", reply.body
    return reply.body["cdr"]


def create(api: Api, env: str = "production", **params: Any) -> Reply:
    return api.post({"action": "createMeeting", **params}, env=env)


def _eventually(send: Any, code: str, timeout: float = 5.0) -> Reply:
    """Accounts are cached by the API for a second: a balance change shows within that."""
    deadline = time.monotonic() + timeout
    reply = send()
    while reply.code != code and time.monotonic() < deadline:
        time.sleep(0.1)
        reply = send()
    return reply


def _ledger(url: str, sid: str) -> dict[str, tuple[int, float]]:
    async def work(db: Database) -> dict[str, tuple[int, float]]:
        async with db.reader() as uow:
            return await uow.ledger.totals(sid)

    return with_database(url, work)


# ---- getBlance ---------------------------------------------------------------------------------


def test_get_blance_before_and_after_an_answered_call(server: Server) -> None:
    """Default tariff (0.06 per started minute): one answered call costs 0.06."""
    api = Api(server, server.new_tenant(balance=10))
    before = balance(api)
    assert before.code == "0", before.body
    assert list(before.body) == ["statusCode", "statusMsg", "requestId", "AccountSID", "Blance"]
    assert before.body["AccountSID"] == api.tenant.sid
    assert before.raw.endswith(b'"Blance":10.00}')
    assert balance(api, env="sandbox").body["Blance"] == 10.0  # the same balance

    created = create(api, creator=NORMAL)
    assert created.code == "0", created.body
    meid = created.body["meid"]
    api.wait_for(meid, lambda m: member(m, NORMAL)["state"] == "answer", env="production")
    time.sleep(1.2)
    assert balance(api).body["Blance"] == 10.0  # a live call is charged when it ends
    assert api.post({"action": "destroyMeeting", "confid": meid}, env="production").code == "0"

    after = balance(api)
    assert after.raw.endswith(b'"Blance":9.94}'), after.raw
    [cdr] = cdrs_of(api, created.body["requestId"])
    assert cdr["oriamount"] == 0.06 and cdr["duration"] >= 1
    assert cdr["stateDesc"] == "应答|会议结束"
    assert _ledger(server.db, api.tenant.sid)["call"] == (1, -0.06)


def test_sandbox_calls_are_free(server: Server) -> None:
    api = Api(server, server.new_tenant(balance=1))
    created = create(api, env="sandbox", creator=NORMAL)
    meid = created.body["meid"]
    api.wait_for(meid, lambda m: member(m, NORMAL)["state"] == "answer")
    time.sleep(1.0)
    assert api.post({"action": "destroyMeeting", "confid": meid}).code == "0"
    [cdr] = cdrs_of(api, created.body["requestId"], env="sandbox")
    assert cdr["oriamount"] == 0.0 and cdr["duration"] >= 1
    assert balance(api).body["Blance"] == 1.0


def test_billing_off_shows_the_unlimited_balance(api: Api) -> None:
    reply = balance(api)
    assert reply.code == "0", reply.body
    assert reply.raw.endswith(b'"Blance":99999999.99}')


def test_get_blance_checks_the_app_and_the_path(api: Api) -> None:
    wrong_app = api.post(
        {"action": "queryBlance", "appid": "f" * 32}, func="account", func_url="getBlance.wx"
    )
    assert wrong_app.code == "-205"
    assert api.post({"action": "queryBlance"}, func="account", func_url="getBlance.wx").code == "0"
    missing = api.post(
        {"action": "queryBlance", "appid": ""}, func="account", func_url="getBlance.wx"
    )
    assert missing.code == "-2"
    on_201512 = api.post(
        {"action": "queryBlance"}, func="account", func_url="getBlance.wx", version="201512"
    )
    assert (on_201512.http_status, on_201512.code) == (404, "-3")
    elsewhere = api.post({"action": "queryBlance"})  # on TeleMeeting.wx
    assert elsewhere.code == "-3"
    wrong_action = api.post({"action": "createMeeting"}, func="account", func_url="getBlance.wx")
    assert wrong_action.code == "-3"


# ---- when the money runs out -------------------------------------------------------------------


def test_a_call_is_hung_up_when_the_balance_runs_out(billed_server: Server) -> None:
    """2-second units at 0.50 and a balance of 1.00: the call lasts 4 s, then 应答|余额不足,
    with one CDR and one debit, and the balance is exactly 0."""
    api = Api(billed_server, billed_server.new_tenant(balance=1))
    created = create(api, creator=NORMAL)
    assert created.code == "0", created.body
    meid = created.body["meid"]
    api.wait_for(meid, lambda m: member(m, NORMAL)["state"] == "answer", env="production")
    answered = time.monotonic()
    meeting = api.wait_for(
        meid, lambda m: member(m, NORMAL)["state"] == "disconnect", env="production", timeout=10
    )
    lasted = time.monotonic() - answered
    assert 3.4 <= lasted <= 5.0, lasted
    assert member(meeting, NORMAL)["stateDesc"] == "应答|余额不足"

    [cdr] = cdrs_of(api, created.body["requestId"])
    assert (cdr["duration"], cdr["oriamount"], cdr["stateDesc"]) == (4, 1.0, "应答|余额不足")
    assert balance(api).raw.endswith(b'"Blance":0.00}')
    ledger = _ledger(billed_server.db, api.tenant.sid)
    assert ledger["call"] == (1, -1.0)
    assert ledger["opening"] == (1, 1.0)
    # The push (replayed here) carries the same charge.
    events = api.post(
        {"action": "queryMeetingEvents", "confid": meid},
        env="production",
        func_url="MeetingQuery.wx",
    ).body["events"]
    [pushed] = [e["body"]["cdr"][0] for e in events if e["type"] == "Call"]
    assert pushed == cdr


def test_calls_of_an_account_share_its_balance(billed_server: Server) -> None:
    """Two calls and 1.00: two units between them, so both end within about 2 s."""
    api = Api(billed_server, billed_server.new_tenant(balance=1))
    first = create(api, creator=NORMAL).body["meid"]
    second = create(api, creator="13800138001").body["meid"]
    for meid, phone in ((first, NORMAL), (second, "13800138001")):
        api.wait_for(
            meid, lambda m, p=phone: member(m, p)["state"] == "disconnect", env="production"
        )
        assert member(api.query(meid, "production"), phone)["stateDesc"] == "应答|余额不足"
    ledger = _ledger(billed_server.db, api.tenant.sid)
    assert ledger["call"][1] == -1.0
    assert balance(api).body["Blance"] == 0.0


# ---- -204 ---------------------------------------------------------------------------------------


def test_dialling_at_zero_balance_is_204(billed_server: Server) -> None:
    api = Api(billed_server, billed_server.new_tenant(balance=0))
    refused = create(api, creator=NORMAL)
    assert (refused.code, refused.msg) == ("-204", "账户余额不足")
    # Reading, hanging up and the sandbox (free) still work.
    assert balance(api).raw.endswith(b'"Blance":0.00}')
    assert create(api, env="sandbox", creator=BUSY).code == "0"
    query = api.post({"action": "queryMeeting", "confid": "nope"}, env="production")
    assert query.code == "-300"
    pulled = api.post(
        {"action": "getCdrByResId", "lastresid": "0", "limit": 10},
        env="production",
        func_url="CallCdr.wx",
    )
    assert pulled.code == "0"


def test_invite_at_zero_balance_is_204_and_a_credit_limit_lifts_it(
    billed_server: Server,
) -> None:
    api = Api(billed_server, billed_server.new_tenant(balance=0.5))
    meid = create(api).body["meid"]  # no one dialled yet: nothing charged
    assert api.invite(meid, BUSY, env="production").code == "0"
    topped = cli_json("account", "topup", api.tenant.sid, "-0.5", db=billed_server.db)
    assert topped == {"sid": api.tenant.sid, "balance": 0.0}
    refused = _eventually(lambda: api.invite(meid, "13800010486", env="production"), "-204")
    assert refused.code == "-204"
    assert create(api).code == "-204"
    run_cli("account", "update", api.tenant.sid, "--credit-limit", "5", db=billed_server.db)
    allowed = _eventually(lambda: api.invite(meid, "13800020486", env="production"), "0")
    assert allowed.code == "0", allowed.body


# ---- crashes ------------------------------------------------------------------------------------

_LIVE_LEGS = Statement(
    "SELECT COUNT(*) FROM legs l JOIN meetings m ON m.id = l.meeting_id "
    "JOIN apps p ON p.appid = m.app_id WHERE p.account_sid = :sid AND l.state != 'disconnect'"
)
_LEGS = Statement(
    "SELECT COUNT(*) FROM legs l JOIN meetings m ON m.id = l.meeting_id "
    "JOIN apps p ON p.appid = m.app_id WHERE p.account_sid = :sid"
)
_ROWS = Statement("SELECT charge FROM cdrs WHERE account_sid = :sid")
_LEDGER = Statement("SELECT amount, reason FROM ledger WHERE account_sid = :sid")
_BALANCE = Statement("SELECT balance FROM accounts WHERE sid = :sid")


def _books(url: str, sid: str) -> dict[str, Any]:
    async def work(db: Database) -> dict[str, Any]:
        async with db.reader() as uow:
            fetch = uow.connection.fetch
            params = {"sid": sid}
            return {
                "live": (await fetch(_LIVE_LEGS, params))[0][0],
                "legs": (await fetch(_LEGS, params))[0][0],
                "charges": [Decimal(str(r[0])) for r in await fetch(_ROWS, params)],
                "ledger": [(Decimal(str(r[0])), r[1]) for r in await fetch(_LEDGER, params)],
                "balance": Decimal(str((await fetch(_BALANCE, params))[0][0])),
            }

    return with_database(url, work)


def test_sigkill_during_leg_ends_neither_loses_nor_doubles_a_charge(
    fresh_db: str, tmp_path: Path
) -> None:
    env = {
        "TELEMEETING_BILLING_UNIT_SECONDS": "1",
        "TELEMEETING_BILLING_PRICE_PER_UNIT": "0.01",
        "TELEMEETING_SERVER_NODE_ID": "node-a",  # the same node, restarted on another port
    }
    server = start_server(fresh_db, tmp_path, env=env)
    restarted: Server | None = None
    try:
        api = Api(server, server.new_tenant(balance=100))
        phones = [f"1380013{i:04d}" for i in range(12)]
        meids = [create(api, parties=[{"phone": p} for p in phones]).body["meid"] for _ in range(5)]
        for meid in meids:
            api.wait_for(
                meid,
                lambda m: all(x["state"] == "answer" for x in m["members"]),
                env="production",
            )
        time.sleep(1.5)  # every call has started a unit or two

        first_destroyed = threading.Event()

        def end_calls() -> None:
            for meid in meids:
                for phone in phones[:3]:
                    kick = {"action": "kickMeetingMember", "confid": meid, "phone": phone}
                    try:
                        api.post(kick, env="production")
                    except Exception:
                        return  # the server is gone
                try:
                    api.post({"action": "destroyMeeting", "confid": meid}, env="production")
                except Exception:
                    return
                first_destroyed.set()

        ending = threading.Thread(target=end_calls)
        ending.start()
        assert first_destroyed.wait(timeout=20)
        time.sleep(0.1)  # more calls are ending as the server dies
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        ending.join(timeout=30)

        restarted = start_server(fresh_db, tmp_path, env=env)  # ends the calls lost in the crash
        deadline = time.monotonic() + 20
        books = _books(fresh_db, api.tenant.sid)
        while books["live"] and time.monotonic() < deadline:
            time.sleep(0.2)
            books = _books(fresh_db, api.tenant.sid)
        assert books["live"] == 0
        assert len(books["charges"]) == books["legs"] == 60  # one CDR per leg, none twice
        debits = [amount for amount, reason in books["ledger"] if reason == "call"]
        assert len(debits) == sum(1 for c in books["charges"] if c > 0)
        assert -sum(debits) == sum(books["charges"])  # exactly, to the cent
        assert sum(amount for amount, _ in books["ledger"]) == books["balance"]
        assert sum(books["charges"]) > 0
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()
