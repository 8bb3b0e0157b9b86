"""Spec §7: status pushes to a real HTTP receiver, in order, once per leg end, surviving crashes."""

from __future__ import annotations

import os
import signal
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.receiver import Received, Receiver
from tests.servers import (
    Api,
    Server,
    cli_json,
    database_url,
    drop_pg_database,
    free_port,
    member,
    run_cli,
    start_server,
)

NORMAL, BUSY, DECLINE, NO_ANSWER = "13800138000", "13800000486", "13800000603", "13800000408"
FAST_CALLBACKS = {
    "TELEMEETING_CALLBACKS_TIMEOUT_SECONDS": "1",
    "TELEMEETING_CALLBACKS_RETRY_INITIAL_SECONDS": "0.2",
    "TELEMEETING_CALLBACKS_RETRY_MAX_SECONDS": "0.5",
}
ORDER = {"callout": 0, "alerting": 1, "answer": 2, "disconnect": 3}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def push_server(db_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server with fast retries per database kind; each test brings its own receiver."""
    tmp = tmp_path_factory.mktemp(f"push-{db_kind}")
    url = database_url(db_kind, tmp)
    server = start_server(url, tmp, env=FAST_CALLBACKS)
    yield server
    server.stop()
    if db_kind == "postgres":
        drop_pg_database(url)


def _production_api(server: Server, callback_url: str) -> Api:
    tenant = server.new_tenant()
    tenant.production_app = server.make_app(tenant.sid, "production", callback_url=callback_url)
    return Api(server, tenant)


def _by_leg(pushes: list[Received]) -> dict[str, list[Received]]:
    legs: dict[str, list[Received]] = defaultdict(list)
    for push in pushes:
        if push.kind == "CallState":
            legs[push.body["dsc"]].append(push)
        elif push.kind == "Call":
            legs[push.body["cdr"][0]["called"]].append(push)
    return legs


def _settled(phones: list[str]):
    def check(pushes: list[Received]) -> bool:
        legs = _by_leg(pushes)
        return all(any(p.kind == "Call" for p in legs.get(phone, [])) for phone in phones)

    return check


def _assert_leg_order(pushes: list[Received]) -> None:
    """Per leg: states never go back, one disconnect, then exactly one CDR, nothing after."""
    for phone, items in _by_leg(pushes).items():
        kinds = [p.kind for p in items]
        assert kinds.count("Call") == 1 and kinds[-1] == "Call", (phone, kinds)
        states = [p.body["state"] for p in items if p.kind == "CallState"]
        assert states.count("disconnect") == 1 and states[-1] == "disconnect", (phone, states)
        assert [ORDER[s] for s in states] == sorted(ORDER[s] for s in states), (phone, states)
        seqs = [p.seq for p in items]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_a_meeting_pushes_every_leg_in_order(push_server: Server, receiver: Receiver) -> None:
    api = _production_api(push_server, receiver.url)
    meid = api.create_meeting(env="production")
    phones = [NORMAL, BUSY, DECLINE, NO_ANSWER]
    invite = api.invite(meid, *phones, env="production", CustomParm="order-42")
    assert invite.code == "0"
    api.wait_for(meid, lambda m: member(m, NO_ANSWER)["state"] == "disconnect", env="production")
    assert api.post({"action": "destroyMeeting", "confid": meid}, env="production").code == "0"
    pushes = receiver.wait_for(_settled(phones))
    pushes = receiver.wait_for(lambda ps: any(p.body.get("state") == "end" for p in ps))
    _assert_leg_order(pushes)
    legs = _by_leg(pushes)
    expected = {
        NORMAL: "应答|会议结束",
        BUSY: "未应答|用户忙",
        DECLINE: "未应答|拒接",
        NO_ANSWER: "未应答|无应答",
    }
    for phone, desc in expected.items():
        final = [p.body for p in legs[phone] if p.kind == "CallState"][-1]
        cdr = next(p.body for p in legs[phone] if p.kind == "Call")["cdr"][0]
        assert final["stateDesc"] == desc and cdr["stateDesc"] == desc
        assert final["requestid"] == invite.body["requestId"] == cdr["requestid"]
        assert final["customParm"] == "order-42" == cdr["customParm"]
        assert final["meid"] == meid and cdr["meid"] == meid
        assert cdr["appid"] == api.tenant.production_app and cdr["tapesurl"] == "NoTapes"
    answered = next(p.body["cdr"][0] for p in legs[NORMAL] if p.kind == "Call")
    assert answered["calledstime"] and answered["calledetime"]
    assert isinstance(answered["duration"], int)
    states = [p.body["state"] for p in legs[NORMAL] if p.kind == "CallState"]
    assert states == ["callout", "alerting", "answer", "disconnect"]
    assert all(p.signature_valid(api.tenant.token) for p in pushes)
    assert not any(p.signature_valid("wrong-secret") for p in pushes)
    assert all(
        p.path == "/cb/ytx" and p.headers["content-type"].startswith("application/json")
        for p in pushes
    )
    meeting_states = [p.body["state"] for p in pushes if p.kind == "MeetingState"]
    assert meeting_states == ["start", "end"]
    # per-meeting sequence numbers: 1..N without gaps, each event once
    assert sorted(p.seq for p in pushes) == list(range(1, len(pushes) + 1))
    assert len({p.event_id for p in pushes}) == len(pushes)
    # the replay holds exactly what was pushed
    replay = api.post(
        {"action": "queryMeetingEvents", "confid": meid},
        env="production",
        func_url="MeetingQuery.wx",
    ).body["events"]
    assert [(e["seq"], e["body"]) for e in replay] == sorted((p.seq, p.body) for p in pushes)


def test_callback_url_with_query_gets_ampersand(push_server: Server, receiver: Receiver) -> None:
    api = _production_api(push_server, receiver.url + "?token=abc")
    api.create_meeting(env="production", parties=[{"phone": BUSY}])
    pushes = receiver.wait_for(_settled([BUSY]))
    assert {p.kind for p in pushes} == {"CallState", "Call", "MeetingState"}


@pytest.mark.parametrize("failure", ["fail", "hang"])
def test_failing_receiver_gets_everything_once_it_recovers(
    push_server: Server, receiver: Receiver, failure: str
) -> None:
    receiver.mode = failure
    receiver.hang_seconds = 1.5  # beyond the 1 s delivery timeout
    api = _production_api(push_server, receiver.url)
    meid = api.create_meeting(env="production", parties=[{"phone": NORMAL}, {"phone": BUSY}])
    api.wait_for(meid, lambda m: member(m, NORMAL)["state"] == "answer", env="production")
    time.sleep(1.5)
    assert receiver.refused > 0 and receiver.pushes() == []
    receiver.mode = "ok"
    assert api.post({"action": "destroyMeeting", "confid": meid}, env="production").code == "0"
    pushes = receiver.wait_for(_settled([NORMAL, BUSY]))
    _assert_leg_order(pushes)
    assert len({p.event_id for p in pushes}) == len(pushes)


def test_a_hanging_receiver_does_not_hold_up_other_apps(
    push_server: Server, receiver: Receiver
) -> None:
    slow = Receiver()
    try:
        slow.mode, slow.hang_seconds = "hang", 5.0  # every attempt runs into the 1 s timeout
        stuck = _production_api(push_server, slow.url)
        for _ in range(3):
            stuck.create_meeting(env="production", parties=[{"phone": BUSY}])
        time.sleep(0.5)  # the stuck app's pushes are on the wire now
        api = _production_api(push_server, receiver.url)
        started = time.monotonic()
        api.create_meeting(env="production", parties=[{"phone": BUSY}])
        receiver.wait_for(_settled([BUSY]), timeout=10)
        assert time.monotonic() - started < 1.5
        assert slow.attempts > 0 and slow.pushes() == []
    finally:
        slow.stop()


def test_a_trickling_answer_is_cut_at_the_timeout(push_server: Server, receiver: Receiver) -> None:
    """httpx times out per phase; a receiver that dribbles its answer must still count as a
    failure after the configured timeout (1 s here), not as delivered many seconds later."""
    receiver.mode = "trickle"
    api = _production_api(push_server, receiver.url)
    api.create_meeting(env="production", parties=[{"phone": BUSY}])
    time.sleep(2.5)
    receiver.mode = "ok"
    switched = time.time()
    pushes = receiver.wait_for(_settled([BUSY]), timeout=15)
    _assert_leg_order(pushes)
    states = [p for p in pushes if p.kind == "CallState"]
    assert [p.body["state"] for p in states] == ["callout", "disconnect"]
    # retried within a second or so of the cut, not only when the 6 s lease ran out
    assert states[0].at - switched < 2.5


def test_refused_connections_then_receiver_appears(push_server: Server) -> None:
    port = free_port()
    api = _production_api(push_server, f"http://127.0.0.1:{port}/cb/ytx")
    api.create_meeting(env="production", parties=[{"phone": BUSY}, {"phone": DECLINE}])
    time.sleep(2.0)
    receiver = Receiver(port)
    try:
        pushes = receiver.wait_for(_settled([BUSY, DECLINE]))
        _assert_leg_order(pushes)
    finally:
        receiver.stop()


def test_sigkill_with_pending_events_loses_none(fresh_db: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**FAST_CALLBACKS, "TELEMEETING_SERVER_NODE_ID": "node-a"}  # restarted as itself
    server = start_server(fresh_db, tmp_path, env=env)
    api = _production_api(server, f"http://127.0.0.1:{port}/cb/ytx")
    meid = api.create_meeting(env="production", parties=[{"phone": NORMAL}, {"phone": BUSY}])
    api.wait_for(meid, lambda m: member(m, BUSY)["state"] == "disconnect", env="production")
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)
    receiver = Receiver(port)
    server = start_server(fresh_db, tmp_path, env=env)
    try:
        api = Api(server, api.tenant)
        pushes = receiver.wait_for(_settled([NORMAL, BUSY]), timeout=40)
        _assert_leg_order(pushes)
        replay = api.post(
            {"action": "queryMeetingEvents", "confid": meid},
            env="production",
            func_url="MeetingQuery.wx",
        ).body["events"]
        receiver.wait_for(lambda ps: len(ps) >= len(replay))
        assert {p.event_id for p in receiver.pushes()} == {e["eventId"] for e in replay}
    finally:
        server.stop()
        receiver.stop()


def test_dead_events_are_listed_and_redelivered(sqlite_db: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**FAST_CALLBACKS, "TELEMEETING_CALLBACKS_GIVE_UP_AFTER_SECONDS": "1"}
    server = start_server(sqlite_db, tmp_path, env=env)
    try:
        api = _production_api(server, f"http://127.0.0.1:{port}/cb/ytx")
        api.create_meeting(env="production", parties=[{"phone": BUSY}])
        deadline = time.monotonic() + 20
        dead: list = []
        while time.monotonic() < deadline and len(dead) < 4:
            time.sleep(0.3)
            dead = cli_json(
                "callbacks",
                "list",
                "--state",
                "dead",
                "--app",
                api.tenant.production_app,
                db=sqlite_db,
            )
        kinds = sorted(e["kind"] for e in dead)
        assert kinds == ["Call", "CallState", "CallState", "MeetingState"], dead
        assert all(e["attempts"] >= 1 and e["last_error"] for e in dead)
        receiver = Receiver(port)
        try:
            single = run_cli("callbacks", "redeliver", dead[0]["id"], "--json", db=sqlite_db)
            assert '"requeued": 1' in single.stdout
            receiver.wait_for(lambda ps: len(ps) == 1)
            rest = run_cli("callbacks", "redeliver", "--all-dead", "--json", db=sqlite_db)
            assert '"requeued": 3' in rest.stdout
            pushes = receiver.wait_for(lambda ps: len(ps) == 4)
            assert sorted(p.event_id for p in pushes) == sorted(e["id"] for e in dead)
            delivered = cli_json("callbacks", "list", "--state", "delivered", db=sqlite_db)
            assert len(delivered) == 4
        finally:
            receiver.stop()
        missing = run_cli("callbacks", "redeliver", "f" * 32, db=sqlite_db, check=False)
        assert missing.returncode == 1 and "no pushable event" in missing.stderr
    finally:
        server.stop()


def test_sandbox_apps_get_no_pushes(push_server: Server, receiver: Receiver) -> None:
    tenant = push_server.new_tenant()
    tenant.sandbox_app = push_server.make_app(tenant.sid, "sandbox", callback_url=receiver.url)
    api = Api(push_server, tenant)
    meid = api.create_meeting(parties=[{"phone": BUSY}])
    api.wait_for(meid, lambda m: member(m, BUSY)["state"] == "disconnect")
    time.sleep(1.0)
    assert receiver.pushes() == []
    events = api.post(
        {"action": "queryMeetingEvents", "confid": meid}, func_url="MeetingQuery.wx"
    ).body["events"]
    assert [e["type"] for e in events] == ["MeetingState", "CallState", "CallState", "Call"]
    stored = cli_json("callbacks", "list", "--app", tenant.sandbox_app, db=push_server.db)
    assert {e["delivery"] for e in stored} == {"stored"}


def test_two_servers_on_one_database_send_each_event_once(
    db_kind: str, fresh_db: str, tmp_path: Path, receiver: Receiver
) -> None:
    """Several dispatchers share the outbox (FOR UPDATE SKIP LOCKED on PostgreSQL)."""
    first = start_server(
        fresh_db, tmp_path, env={**FAST_CALLBACKS, "TELEMEETING_SERVER_NODE_ID": "a"}
    )
    second = start_server(
        fresh_db, tmp_path, env={**FAST_CALLBACKS, "TELEMEETING_SERVER_NODE_ID": "b"}
    )
    try:
        api = _production_api(first, receiver.url)
        other = Api(second, api.tenant)
        phones = [f"1380000{i:04d}"[:7] + f"{i:02d}0486" for i in range(10)]
        meids = []
        for i, phone in enumerate(phones):
            side = api if i % 2 else other
            meids.append(side.create_meeting(env="production", parties=[{"phone": phone}]))
        pushes = receiver.wait_for(_settled(phones), timeout=30)
        time.sleep(1.0)  # anything sent twice would arrive by now
        pushes = receiver.pushes()
        assert len({p.event_id for p in pushes}) == len(pushes) == 4 * len(phones)
        _assert_leg_order(pushes)
    finally:
        first.stop()
        second.stop()


def test_sdk_verifies_and_parses_genuine_pushes(push_server: Server, receiver: Receiver) -> None:
    from telemeeting.client import webhooks
    from telemeeting.client.models import CallRecord, CallState, MeetingStateChange

    api = _production_api(push_server, receiver.url)
    api.create_meeting(env="production", parties=[{"phone": BUSY}], CustomParm="sdk")
    pushes = receiver.wait_for(_settled([BUSY]))
    token = api.tenant.token
    parsed = []
    for push in pushes:
        assert webhooks.verify(push.headers, push.raw, token) > 0
        parsed.extend(webhooks.parse(f"{push.path}?{push.kind}", push.raw))
        with pytest.raises(webhooks.WebhookVerificationError):
            webhooks.verify(push.headers, push.raw.replace(b"}", b" }", 1), token)
        with pytest.raises(webhooks.WebhookVerificationError):
            webhooks.verify(push.headers, push.raw, "f" * 32)
        with pytest.raises(webhooks.WebhookVerificationError):
            webhooks.verify(push.headers, push.raw, token, now=time.time() + 3600)
    states = [e for e in parsed if isinstance(e, CallState)]
    assert [s.state for s in states] == ["callout", "disconnect"]
    assert states[-1].reason == "用户忙" and states[-1].custom_parm == "sdk"
    assert sum(isinstance(e, CallRecord) for e in parsed) == 1
    assert any(isinstance(e, MeetingStateChange) for e in parsed)
