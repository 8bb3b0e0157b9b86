"""Spec §6.1 (booking, limits) and §6.5–§6.7: member control, event replay, idempotency."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.servers import ZONE, Api, member, start_server

NORMAL, OTHER, BUSY = "13800138000", "13900139000", "13800000486"


def _answered(phone: str):
    return lambda meeting: member(meeting, phone)["state"] == "answer"


def _events(api: Api, meid: str, **params: object) -> list[dict]:
    reply = api.post(
        {"action": "queryMeetingEvents", "confid": meid, **params}, func_url="MeetingQuery.wx"
    )
    assert reply.code == "0", reply.body
    return reply.body["events"]


# ---- member control ---------------------------------------------------------------------


def test_mute_and_unmute_a_joined_member(api: Api) -> None:
    meid = api.create_meeting(parties=[{"phone": NORMAL}])
    api.wait_for(meid, _answered(NORMAL))
    control = {"confid": meid, "phone": NORMAL}
    assert api.post({"action": "muteMeetingMember", **control}).code == "0"
    assert member(api.query(meid), NORMAL)["muted"] is True
    assert api.post({"action": "unmuteMeetingMember", **control}).code == "0"
    assert member(api.query(meid), NORMAL)["muted"] is False


def test_member_control_of_a_non_member_is_304(api: Api) -> None:
    meid = api.create_meeting(parties=[{"phone": BUSY}])
    api.wait_for(meid, lambda m: member(m, BUSY)["state"] == "disconnect")
    for action in ("muteMeetingMember", "unmuteMeetingMember", "kickMeetingMember"):
        for phone in (BUSY, OTHER):  # ended, never invited
            reply = api.post({"action": action, "confid": meid, "phone": phone})
            assert (reply.code, reply.msg) == ("-304", "成员不存在"), (action, phone)
    assert api.post({"action": "muteMeetingMember", "confid": meid}).code == "-2"
    assert api.post({"action": "kickMeetingMember", "confid": meid, "phone": "x"}).code == "-102"


def test_kick_leaves_the_others(api: Api) -> None:
    meid = api.create_meeting(parties=[{"phone": NORMAL}, {"phone": OTHER}])
    api.wait_for(meid, lambda m: all(x["state"] == "answer" for x in m["members"]))
    assert api.post({"action": "kickMeetingMember", "confid": meid, "phone": NORMAL}).code == "0"
    meeting = api.query(meid)
    assert member(meeting, NORMAL)["stateDesc"] == "应答|被踢出"
    assert member(meeting, OTHER)["state"] == "answer" and meeting["state"] == "active"


# ---- event replay --------------------------------------------------------------------------


def test_event_replay_pages_in_sequence_order(api: Api) -> None:
    meid = api.create_meeting(parties=[{"phone": NORMAL}, {"phone": BUSY}], CustomParm="c-1")
    api.wait_for(meid, _answered(NORMAL))
    events = _events(api, meid)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "MeetingState" and events[0]["body"]["state"] == "start"
    busy = [e["body"] for e in events if e["type"] == "CallState" and e["body"]["dsc"] == BUSY]
    assert [b["state"] for b in busy] == ["callout", "disconnect"]
    assert busy[-1]["stateDesc"] == "未应答|用户忙" and busy[-1]["customParm"] == "c-1"
    page = _events(api, meid, after=2, limit="2")
    assert [e["seq"] for e in page] == [3, 4]
    assert page == events[2:4]
    assert _events(api, meid, after=len(events)) == []
    assert (
        api.post(
            {"action": "queryMeetingEvents", "confid": meid, "limit": 0}, func_url="MeetingQuery.wx"
        ).code
        == "-101"
    )
    assert (
        api.post(
            {"action": "queryMeetingEvents", "confid": "nope"}, func_url="MeetingQuery.wx"
        ).code
        == "-300"
    )
    assert api.post({"action": "queryMeetingEvents", "confid": meid}).code == "-3"


# ---- idempotency ---------------------------------------------------------------------------


def test_repeated_invite_with_key_dials_once(api: Api) -> None:
    meid = api.create_meeting()
    key = {"Idempotency-Key": f"invite-{meid}"}
    first = api.invite(meid, NORMAL, headers=key)
    again = api.invite(meid, NORMAL, headers=key)
    assert first.code == again.code == "0"
    assert again.body == first.body  # the same requestId
    assert len(api.query(meid)["members"]) == 1
    other_body = api.invite(meid, OTHER, headers=key)
    assert (other_body.code, other_body.msg) == ("-101", "参数不合法")


def test_concurrent_repeats_dial_once(api: Api) -> None:
    meid = api.create_meeting()
    key = {"Idempotency-Key": f"burst-{meid}"}
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: api.invite(meid, NORMAL, headers=key), range(8)))
    assert {r.code for r in replies} == {"0"}
    assert len({r.body["requestId"] for r in replies}) == 1
    meeting = api.wait_for(meid, _answered(NORMAL))
    assert len(meeting["members"]) == 1
    callouts = [
        e
        for e in _events(api, meid)
        if e["type"] == "CallState" and e["body"]["state"] == "callout"
    ]
    assert len(callouts) == 1


def test_repeated_create_returns_the_same_meeting(api: Api) -> None:
    key = {"Idempotency-Key": f"create-{time.time_ns()}"}
    first = api.post({"action": "createMeeting", "meetingname": "x"}, headers=key)
    again = api.post({"action": "createMeeting", "meetingname": "x"}, headers=key)
    assert first.code == "0" and again.body == first.body
    assert list(again.body) == ["statusCode", "statusMsg", "requestId", "meid"]


def test_refused_requests_are_not_remembered(api: Api) -> None:
    key = {"Idempotency-Key": f"refused-{time.time_ns()}"}
    assert api.invite("no-such-room", NORMAL, headers=key).code == "-300"
    meid = api.create_meeting()
    # the same key may now be used for a request that succeeds
    assert api.post({"action": "destroyMeeting", "confid": meid}, headers=key).code == "0"


def test_bad_keys_and_keys_on_queries(api: Api) -> None:
    meid = api.create_meeting()
    for bad in ("x" * 129, "tab\there"):
        assert api.invite(meid, NORMAL, headers={"Idempotency-Key": bad}).code == "-101"
    query = {"action": "queryMeeting", "confid": meid}
    assert api.post(query, headers={"Idempotency-Key": "q"}).code == "0"
    assert api.post({**query, "confid": "other"}, headers={"Idempotency-Key": "q"}).code == "-300"


def test_keys_belong_to_one_account(api: Api) -> None:
    other = Api(api.server, api.server.new_tenant())
    key = {"Idempotency-Key": f"shared-{time.time_ns()}"}
    mine, theirs = api.create_meeting(), other.create_meeting()
    assert api.invite(mine, NORMAL, headers=key).code == "0"
    assert other.invite(theirs, NORMAL, headers=key).code == "0"
    assert len(other.query(theirs)["members"]) == 1


# ---- booked meetings -------------------------------------------------------------------------


def _wall(seconds_ahead: float, fmt: str) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds_ahead)).astimezone(ZONE).strftime(fmt)


def test_booked_meeting_starts_at_its_time(api: Api) -> None:
    for fmt in ("%Y%m%d%H%M%S", "%Y-%m-%d %H:%M:%S"):
        meid = api.create_meeting(
            bookmeeting="1", booktime=_wall(2, fmt), creator=NORMAL, parties=[{"phone": OTHER}]
        )
        booked = api.query(meid)
        assert booked["state"] == "booked"
        assert _events(api, meid) == []  # nothing dialled yet
        meeting = api.wait_for(
            meid, lambda m: all(x["state"] == "answer" for x in m["members"]), timeout=15
        )
        assert meeting["state"] == "active"
        assert [m["phone"] for m in meeting["members"]] == [NORMAL, OTHER]
        start = _events(api, meid)[0]["body"]
        assert (start["state"], start["reason"]) == ("start", "booked")


def test_destroy_cancels_a_booked_meeting(api: Api) -> None:
    meid = api.create_meeting(
        bookmeeting="1", booktime=_wall(3600, "%Y%m%d%H%M%S"), parties=[{"phone": NORMAL}]
    )
    assert api.post({"action": "destroyMeeting", "confid": meid}).code == "0"
    meeting = api.query(meid)
    assert meeting["state"] == "ended"
    assert member(meeting, NORMAL)["stateDesc"] == "未应答|会议结束"
    end = _events(api, meid)[-1]["body"]
    assert (end["state"], end["reason"]) == ("end", "cancelled")


def test_booking_survives_a_restart(fresh_db: str, tmp_path: Path) -> None:
    server = start_server(fresh_db, tmp_path)
    api = Api(server, server.new_tenant())
    meid = api.create_meeting(
        bookmeeting="1", booktime=_wall(4, "%Y%m%d%H%M%S"), parties=[{"phone": NORMAL}]
    )
    assert api.query(meid)["state"] == "booked"
    server.stop()  # down before the booked time; it starts when the server is back
    server = start_server(fresh_db, tmp_path)
    try:
        api = Api(server, api.tenant)
        meeting = api.wait_for(meid, _answered(NORMAL), timeout=20)
        assert meeting["state"] == "active"
        starts = [e for e in _events(api, meid) if e["type"] == "MeetingState"]
        assert [e["body"]["reason"] for e in starts] == ["booked"]
    finally:
        server.stop()


def test_sdk_retries_with_an_idempotency_key_dial_once(api: Api) -> None:
    from telemeeting.client import Client

    with Client(
        account_sid=api.tenant.sid,
        auth_token=api.tenant.token,
        app_id=api.tenant.sandbox_app,
        base_url=api.server.sandbox_url,
    ) as client:
        meid = client.create_meeting(idempotency_key=f"sdk-create-{time.time_ns()}").meid
        key = f"sdk-invite-{meid}"
        first = client.invite(meid, [("张三", NORMAL)], idempotency_key=key)
        again = client.invite(meid, [("张三", NORMAL)], idempotency_key=key)
        assert first.request_id == again.request_id
        assert len(client.query_meeting(meid).members) == 1
