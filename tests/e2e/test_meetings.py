"""Spec §5-§6.4 and §8: meetings on the simulated carrier, through real HTTP requests."""

from __future__ import annotations

import json
import re

import pytest

from tests.servers import Api, member

NORMAL, OTHER, THIRD = "13800138000", "13900139000", "01053889900"
BUSY, NO_ANSWER, DECLINE, NOT_FOUND = "13800000486", "13800000408", "13800000603", "13800000404"


def _answered(phone: str):
    return lambda meeting: member(meeting, phone)["state"] == "answer"


def _disconnected(phone: str):
    return lambda meeting: member(meeting, phone)["state"] == "disconnect"


# ---- createMeeting ----------


def test_create_meeting_returns_generated_meid(api: Api) -> None:
    reply = api.post({"action": "createMeeting", "meetingname": "周会"})
    assert reply.code == "0" and reply.msg == "提交成功"
    assert list(reply.body) == ["statusCode", "statusMsg", "requestId", "meid"]
    assert re.fullmatch(r"\d+", reply.body["meid"])
    assert re.fullmatch(r"\d{29}", reply.body["requestId"])
    meeting = api.query(reply.body["meid"])
    assert meeting["meetingname"] == "周会"
    assert meeting["state"] == "active"
    assert meeting["maxmembers"] == 100
    assert meeting["members"] == []
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", meeting["createtime"])
    assert meeting["endtime"] == ""


def test_request_ids_are_unique(api: Api) -> None:
    ids = {api.post({"action": "createMeeting"}).body["requestId"] for _ in range(20)}
    assert len(ids) == 20


def test_create_meeting_with_confid_and_clash(api: Api) -> None:
    confid = f"room_{api.tenant.sid[:8]}-1"
    assert api.create_meeting(confid=confid) == confid
    reply = api.post({"action": "createMeeting", "confid": confid})
    assert (reply.code, reply.msg) == ("-101", "参数不合法")
    # once the first has ended, the room number is free again
    assert api.post({"action": "destroyMeeting", "confid": confid}).code == "0"
    assert api.create_meeting(confid=confid) == confid


@pytest.mark.parametrize("confid", ["has space", "x" * 33, "中文", "a/b"])
def test_create_meeting_with_bad_confid_is_101(api: Api, confid: str) -> None:
    assert api.post({"action": "createMeeting", "confid": confid}).code == "-101"


def test_create_meeting_dials_creator_and_parties(api: Api) -> None:
    meid = api.create_meeting(
        creator=NORMAL, parties=[{"name": "李四", "phone": OTHER}], CustomParm="order-9"
    )
    meeting = api.wait_for(meid, lambda m: all(x["state"] == "answer" for x in m["members"]))
    assert [m["phone"] for m in meeting["members"]] == [NORMAL, OTHER]
    assert member(meeting, OTHER)["name"] == "李四"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"creator": "150****0804"}, "-102"),
        ({"parties": [{"phone": "abc"}]}, "-102"),
        ({"meetingname": "x" * 65}, "-101"),
        ({"maxmembers": 0}, "-101"),
        ({"maxmembers": "1001"}, "-101"),
        ({"bookmeeting": "2"}, "-101"),
        ({"bookmeeting": "1"}, "-2"),
        ({"bookmeeting": "1", "booktime": "tomorrow"}, "-101"),
        ({"bookmeeting": "1", "booktime": "20200101120000"}, "-101"),
        ({"creator": NORMAL, "parties": [{"phone": NORMAL}]}, "-303"),
        ({"maxmembers": 1, "parties": [{"phone": NORMAL}, {"phone": OTHER}]}, "-302"),
    ],
)
def test_create_meeting_validation(api: Api, params: dict, code: str) -> None:
    reply = api.post({"action": "createMeeting", **params})
    assert reply.code == code, reply.body
    assert reply.body["requestId"] == ""


# ---- inviteJoinMeeting: the seed ----------


def test_invited_normal_number_answers_within_3_seconds(api: Api) -> None:
    meid = api.create_meeting()
    reply = api.invite(meid, NORMAL)
    assert (reply.code, reply.msg) == ("0", "提交成功")
    assert list(reply.body) == ["statusCode", "statusMsg", "requestId"]
    meeting = api.wait_for(meid, _answered(NORMAL), timeout=3)
    joined = member(meeting, NORMAL)
    assert joined["stateDesc"] == "接听"
    assert joined["requestid"] == reply.body["requestId"]
    assert joined["jointime"] and joined["leavetime"] == ""
    assert joined["muted"] is False


@pytest.mark.parametrize(
    ("phone", "desc"),
    [
        (BUSY, "未应答|用户忙"),
        (NOT_FOUND, "未应答|号码无效"),
        (DECLINE, "未应答|拒接"),
        (NO_ANSWER, "未应答|无应答"),
    ],
)
def test_failing_numbers_disconnect_with_reason(api: Api, phone: str, desc: str) -> None:
    meid = api.create_meeting()
    assert api.invite(meid, phone).code == "0"
    meeting = api.wait_for(meid, _disconnected(phone), timeout=10)
    assert member(meeting, phone)["stateDesc"] == desc
    assert meeting["state"] == "active"  # nobody had joined: the meeting stays open


def test_extension_is_accepted_and_kept(api: Api) -> None:
    meid = api.create_meeting()
    assert api.invite(meid, "01053889900,1234#").code == "0"
    api.wait_for(meid, _answered("01053889900,1234#"))


def test_seed_example_body_with_unescaped_parties(api: Api) -> None:
    meid = api.create_meeting()
    body = (
        '{"action":"inviteJoinMeeting",\n"appid":"' + api.tenant.sandbox_app + '",\n'
        '"confid":"' + meid + '",\n'
        '"parties":"[{"name":"张三","phone":"' + NORMAL + '"},\n'
        '{"name":"李四","phone":"' + OTHER + '"}]"}'
    )
    reply = api.post(body)
    assert reply.code == "0", reply.body
    meeting = api.wait_for(meid, lambda m: len(m["members"]) == 2)
    assert [(m["name"], m["phone"]) for m in meeting["members"]] == [
        ("张三", NORMAL),
        ("李四", OTHER),
    ]


def test_seed_example_with_masked_numbers_is_102_and_dials_nothing(api: Api) -> None:
    meid = api.create_meeting()
    body = (
        '{"action":"inviteJoinMeeting",\n"appid":"' + api.tenant.sandbox_app + '",\n'
        '"confid":"' + meid + '",\n'
        '"parties":"[{"name":"张三","phone":"150****0804"},\n'
        '{"name":"李四","phone":"136****7556"}]"}'
    )
    reply = api.post(body)
    assert (reply.code, reply.msg) == ("-102", "电话号码不合法")
    assert api.query(meid)["members"] == []


def test_one_bad_phone_dials_nothing_of_the_request(api: Api) -> None:
    meid = api.create_meeting()
    assert api.invite(meid, NORMAL, "150****0804").code == "-102"
    assert api.query(meid)["members"] == []


def test_parties_as_escaped_string(api: Api) -> None:
    meid = api.create_meeting()
    parties = json.dumps([{"name": "王五", "phone": NORMAL}], ensure_ascii=False)
    reply = api.post({"action": "inviteJoinMeeting", "confid": meid, "parties": parties})
    assert reply.code == "0"
    assert member(api.query(meid), NORMAL)["name"] == "王五"


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json;charset=utf-8;",
        "application/x-www-form-urlencoded; charset=UTF-8",
        "application/x-www-from-urlencoded",
        None,
    ],
)
def test_content_types_of_real_clients(api: Api, content_type: str | None) -> None:
    meid = api.create_meeting()
    reply = api.post(
        {"action": "inviteJoinMeeting", "confid": meid, "parties": [{"phone": NORMAL}]},
        content_type=content_type,
    )
    assert reply.code == "0"


def test_utf8_bom_is_ignored(api: Api) -> None:
    meid = api.create_meeting()
    body = json.dumps(
        {"action": "queryMeeting", "appid": api.tenant.sandbox_app, "confid": meid}
    ).encode()
    assert api.post(b"\xef\xbb\xbf" + body).code == "0"


@pytest.mark.parametrize("key", ["CustomParm", "customParm"])
def test_custom_parm_spellings(api: Api, key: str) -> None:
    meid = api.create_meeting()
    assert api.invite(meid, NORMAL, **{key: "order-123"}).code == "0"
    events = api.post(
        {"action": "queryMeetingEvents", "confid": meid}, func_url="MeetingQuery.wx"
    ).body["events"]
    call_states = [e["body"] for e in events if e["type"] == "CallState"]
    assert call_states and all(b["customParm"] == "order-123" for b in call_states)


def test_first_custom_parm_spelling_wins(api: Api) -> None:
    meid = api.create_meeting()
    body = {
        "action": "inviteJoinMeeting",
        "confid": meid,
        "parties": [{"phone": NORMAL}],
        "CustomParm": "first",
        "customParm": "second",
    }
    assert api.post(body).code == "0"
    events = api.post(
        {"action": "queryMeetingEvents", "confid": meid}, func_url="MeetingQuery.wx"
    ).body["events"]
    call_states = [e["body"] for e in events if e["type"] == "CallState"]
    assert call_states and all(b["customParm"] == "first" for b in call_states)


def test_numbers_sent_as_json_numbers(api: Api) -> None:
    meid = api.create_meeting(confid=int(api.tenant.sid[:6], 16) + 10**7)
    reply = api.post(
        {
            "action": "inviteJoinMeeting",
            "confid": int(meid),
            "parties": [{"name": 7, "phone": int(NORMAL)}],
        }
    )
    assert reply.code == "0", reply.body
    assert member(api.query(meid), NORMAL)["name"] == "7"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"parties": [{"phone": NORMAL}]}, "-2"),  # no confid
        ({"confid": "1"}, "-2"),  # no parties
        ({"confid": "1", "parties": []}, "-2"),
        ({"confid": "1", "parties": [{"name": "x"}]}, "-2"),
        ({"confid": "1", "parties": "not an array"}, "-101"),
        ({"confid": "1", "parties": [{"phone": NORMAL, "name": "n" * 65}]}, "-101"),
        ({"confid": "1", "parties": [{"phone": NORMAL}], "CustomParm": "c" * 257}, "-101"),
        ({"confid": "1", "parties": [{"phone": "12"}]}, "-102"),
        ({"confid": "1", "parties": [{"phone": "13800138000,"}]}, "-102"),
        ({"confid": "no-such-room", "parties": [{"phone": NORMAL}]}, "-300"),
    ],
)
def test_invite_validation(api: Api, body: dict, code: str) -> None:
    reply = api.post({"action": "inviteJoinMeeting", **body})
    assert reply.code == code, reply.body
    assert reply.body["requestId"] == ""


def test_unencodable_text_is_101_and_deep_nesting_is_4(api: Api) -> None:
    meid = api.create_meeting()
    for raw in (
        '{"action":"createMeeting","appid":"%s","meetingname":"a\\u0000b"}',
        '{"action":"createMeeting","appid":"%s","meetingname":"a\\ud800b"}',
        '{"action":"inviteJoinMeeting","appid":"%s","confid":"1",'
        '"parties":[{"name":"\\ud800","phone":"13800138000"}]}',
    ):
        reply = api.post(raw % api.tenant.sandbox_app)
        assert reply.code == "-101", (raw, reply.body)
    assert api.post("[" * 30000).code == "-4"
    reply = api.post(
        {"action": "queryMeetingEvents", "confid": meid, "after": 2**40},
        func_url="MeetingQuery.wx",
    )
    assert reply.code == "-101"


def test_duplicate_phone_is_303(api: Api) -> None:
    meid = api.create_meeting()
    assert api.invite(meid, NORMAL, NORMAL).code == "-303"
    assert api.invite(meid, NORMAL).code == "0"
    assert api.invite(meid, NORMAL).code == "-303"  # ringing or joined
    api.wait_for(meid, _answered(NORMAL))
    assert api.invite(meid, NORMAL).code == "-303"


def test_phone_can_be_invited_again_after_its_leg_ended(api: Api) -> None:
    meid = api.create_meeting()
    assert api.invite(meid, BUSY).code == "0"
    api.wait_for(meid, _disconnected(BUSY))
    assert api.invite(meid, BUSY).code == "0"
    meeting = api.wait_for(meid, lambda m: len(m["members"]) == 2)
    assert meeting["members"][0]["requestid"] != meeting["members"][1]["requestid"]


def test_member_limit_is_302_counting_ringing_legs(api: Api) -> None:
    meid = api.create_meeting(maxmembers="2")
    assert api.invite(meid, NORMAL).code == "0"
    assert api.invite(meid, OTHER, THIRD).code == "-302"
    assert api.invite(meid, OTHER).code == "0"
    assert api.invite(meid, THIRD).code == "-302"


def test_ended_legs_free_their_place(api: Api) -> None:
    meid = api.create_meeting(maxmembers=1)
    assert api.invite(meid, BUSY).code == "0"
    api.wait_for(meid, _disconnected(BUSY))
    assert api.invite(meid, NORMAL).code == "0"


def test_meeting_of_another_app_is_300(api: Api) -> None:
    meid = api.create_meeting(env="production")
    assert api.invite(meid, NORMAL).code == "-300"  # sandbox app, production meeting


# ---- destroyMeeting and queryMeeting ----------


def test_destroy_ends_every_leg_once(api: Api) -> None:
    meid = api.create_meeting()
    assert api.invite(meid, NORMAL, NO_ANSWER).code == "0"
    api.wait_for(meid, _answered(NORMAL))
    reply = api.post({"action": "destroyMeeting", "confid": meid})
    assert reply.code == "0" and re.fullmatch(r"\d{29}", reply.body["requestId"])
    meeting = api.query(meid)
    assert meeting["state"] == "ended" and meeting["endtime"]
    assert member(meeting, NORMAL)["stateDesc"] == "应答|会议结束"
    assert member(meeting, NORMAL)["leavetime"]
    assert member(meeting, NO_ANSWER)["stateDesc"] == "未应答|会议结束"
    events = api.post(
        {"action": "queryMeetingEvents", "confid": meid}, func_url="MeetingQuery.wx"
    ).body["events"]
    disconnects = [
        e["body"]["dsc"]
        for e in events
        if e["type"] == "CallState" and e["body"]["state"] == "disconnect"
    ]
    assert sorted(disconnects) == sorted([NORMAL, NO_ANSWER])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


def test_ended_meeting_refuses_actions_with_301(api: Api) -> None:
    meid = api.create_meeting()
    assert api.post({"action": "destroyMeeting", "confid": meid}).code == "0"
    assert api.post({"action": "destroyMeeting", "confid": meid}).code == "-301"
    reply = api.invite(meid, NORMAL)
    assert (reply.code, reply.msg) == ("-301", "会议已结束")
    assert api.query(meid)["state"] == "ended"  # still queryable


def test_unknown_meeting_is_300(api: Api) -> None:
    for action in ("destroyMeeting", "queryMeeting"):
        reply = api.post({"action": action, "confid": "does-not-exist"})
        assert (reply.code, reply.msg) == ("-300", "会议不存在")


def test_missing_confid_is_2(api: Api) -> None:
    for action in ("destroyMeeting", "queryMeeting"):
        assert api.post({"action": action}).code == "-2"


def test_meeting_ends_when_last_joined_member_leaves(api: Api) -> None:
    meid = api.create_meeting()
    assert api.invite(meid, NORMAL).code == "0"
    api.wait_for(meid, _answered(NORMAL))
    reply = api.post({"action": "kickMeetingMember", "confid": meid, "phone": NORMAL})
    assert reply.code == "0"
    meeting = api.wait_for(meid, lambda m: m["state"] == "ended")
    assert member(meeting, NORMAL)["stateDesc"] == "应答|被踢出"


def test_production_and_sandbox_both_work(api: Api) -> None:
    meid = api.create_meeting(env="production")
    assert api.invite(meid, NORMAL, env="production").code == "0"
    api.wait_for(meid, _answered(NORMAL), env="production")
