"""Typed requests parsed from action bodies (spec §5 and §6)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telemeeting.wire.actions import (
    ACTIONS_BY_FUNC_URL,
    CREATE_MEETING,
    CUSTOM_PARM_MAX,
    DESTROY_MEETING,
    INVITE,
    KICK_MEMBER,
    MAX_MEMBERS_CAP,
    MEETING_QUERY,
    MUTE_MEMBER,
    NAME_MAX,
    QUERY_EVENTS,
    QUERY_MEETING,
    TELEMEETING,
    UNMUTE_MEMBER,
    CreateMeeting,
    EventsQuery,
    Invite,
    MeetingRef,
    MemberRef,
    Party,
    parse_create_meeting,
    parse_events_query,
    parse_invite,
    parse_meeting_ref,
    parse_member_ref,
    parse_parties,
)
from telemeeting.wire.body import parse_body
from telemeeting.wire.phones import Phone
from telemeeting.wire.status import Status, WireError

PARTIES = [
    {"name": "张三", "phone": "13800138000"},
    {"name": "王五", "phone": "01053889900,1234"},
]
EXPECTED_PARTIES = (
    Party(Phone("13800138000"), "张三"),
    Party(Phone("01053889900", "1234"), "王五"),
)


def _code(fn, body) -> str:
    with pytest.raises(WireError) as info:
        fn(body)
    assert isinstance(info.value.status, Status)
    return info.value.status.code


# ---- routing table --------------------------------------------------------------------------


def test_actions_by_func_url():
    assert ACTIONS_BY_FUNC_URL[TELEMEETING] == {
        "createMeeting",
        "inviteJoinMeeting",
        "destroyMeeting",
        "queryMeeting",
        "muteMeetingMember",
        "unmuteMeetingMember",
        "kickMeetingMember",
        # extensions (issue 14, in-call media)
        "startMeetingRecording",
        "stopMeetingRecording",
        "muteAllMeetingMembers",
        "unmuteAllMeetingMembers",
        "holdMeetingMember",
        "unholdMeetingMember",
        "playMeetingPrompt",
        "stopMeetingPrompt",
    }
    assert ACTIONS_BY_FUNC_URL[MEETING_QUERY] == {"queryMeeting", "queryMeetingEvents"}
    assert (CREATE_MEETING, INVITE, DESTROY_MEETING) == (
        "createMeeting",
        "inviteJoinMeeting",
        "destroyMeeting",
    )
    assert (MUTE_MEMBER, UNMUTE_MEMBER, KICK_MEMBER, QUERY_MEETING, QUERY_EVENTS) == (
        "muteMeetingMember",
        "unmuteMeetingMember",
        "kickMeetingMember",
        "queryMeeting",
        "queryMeetingEvents",
    )
    assert TELEMEETING == "TeleMeeting.wx"
    assert MEETING_QUERY == "MeetingQuery.wx"


def test_limits():
    assert (NAME_MAX, CUSTOM_PARM_MAX, MAX_MEMBERS_CAP) == (64, 256, 1000)


# ---- inviteJoinMeeting ----------------------------------------------------------------------


def test_invite_parties_as_array():
    invite = parse_invite({"confid": "002", "parties": PARTIES})
    assert invite == Invite(confid="002", parties=EXPECTED_PARTIES, custom_parm="")


def test_invite_parties_as_escaped_string():
    body = parse_body(
        json.dumps({"confid": "002", "parties": json.dumps(PARTIES, ensure_ascii=False)}).encode()
    )
    assert isinstance(body["parties"], str)
    assert parse_invite(body).parties == EXPECTED_PARTIES


def test_invite_parties_order_preserved():
    parties = [{"phone": f"1380013800{i}"} for i in range(10)]
    invite = parse_invite({"confid": "1", "parties": parties})
    assert [p.phone.number for p in invite.parties] == [p["phone"] for p in parties]
    assert all(p.name == "" for p in invite.parties)


def test_invite_numbers_sent_as_json_numbers():
    body = parse_body(b'{"confid":2,"parties":[{"name":"a","phone":13800138000}],"CustomParm":123}')
    invite = parse_invite(body)
    assert invite == Invite(
        confid="2", parties=(Party(Phone("13800138000"), "a"),), custom_parm="123"
    )


def test_invite_custom_parm_either_case():
    base = {"confid": "1", "parties": PARTIES}
    assert parse_invite({**base, "CustomParm": "order-1"}).custom_parm == "order-1"
    assert parse_invite({**base, "customParm": "order-2"}).custom_parm == "order-2"


def test_invite_custom_parm_first_wins():
    body = {"confid": "1", "parties": PARTIES, "CustomParm": "upper", "customParm": "lower"}
    assert parse_invite(body).custom_parm == "upper"
    # The JSON key order of the body does not matter: CustomParm is the first name looked up.
    body = {"confid": "1", "parties": PARTIES, "customParm": "lower", "CustomParm": "upper"}
    assert parse_invite(body).custom_parm == "upper"


def test_invite_custom_parm_length():
    base = {"confid": "1", "parties": PARTIES}
    assert parse_invite({**base, "CustomParm": "x" * 256}).custom_parm == "x" * 256
    assert _code(parse_invite, {**base, "CustomParm": "x" * 257}) == "-101"
    assert _code(parse_invite, {**base, "customParm": "订" * 257}) == "-101"


def test_invite_custom_parm_wrong_type():
    assert _code(parse_invite, {"confid": "1", "parties": PARTIES, "CustomParm": {}}) == "-101"


def test_invite_unknown_parameters_ignored():
    body = {"confid": "1", "parties": PARTIES, "action": INVITE, "appid": "x", "foo": [1]}
    assert parse_invite(body).parties == EXPECTED_PARTIES


@pytest.mark.parametrize(
    "body",
    [
        {"confid": "1"},
        {"confid": "1", "parties": None},
        {"confid": "1", "parties": ""},
        {"confid": "1", "parties": []},
        {"confid": "1", "parties": "[]"},
    ],
)
def test_invite_missing_parties_is_minus_2(body):
    assert _code(parse_invite, body) == "-2"


@pytest.mark.parametrize("confid", [None, "", "  "])
def test_invite_missing_confid_is_minus_2(confid):
    body = {"parties": PARTIES} if confid is None else {"confid": confid, "parties": PARTIES}
    assert _code(parse_invite, body) == "-2"


@pytest.mark.parametrize(
    "party", [{"name": "x"}, {"name": "x", "phone": ""}, {"name": "x", "phone": None}, {}]
)
def test_invite_party_without_phone_is_minus_2(party):
    assert _code(parse_invite, {"confid": "1", "parties": [PARTIES[0], party]}) == "-2"


@pytest.mark.parametrize(
    "phone", ["150****0804", "abc", "12", "9" * 21, "01053889900,", "01053889900,12a"]
)
def test_invite_bad_phone_is_minus_102(phone):
    parties = [*PARTIES, {"name": "bad", "phone": phone}]
    assert _code(parse_invite, {"confid": "1", "parties": parties}) == "-102"


def test_invite_bad_phone_anywhere_fails_the_whole_request():
    parties = [{"phone": "150****0804"}, *PARTIES]
    assert _code(parse_invite, {"confid": "1", "parties": parties}) == "-102"


def test_invite_name_length():
    ok = parse_invite({"confid": "1", "parties": [{"name": "名" * 64, "phone": "13800138000"}]})
    assert ok.parties[0].name == "名" * 64
    long_name = [{"name": "名" * 65, "phone": "13800138000"}]
    assert _code(parse_invite, {"confid": "1", "parties": long_name}) == "-101"


@pytest.mark.parametrize(
    "parties",
    [
        "not json",
        '{"phone":"13800138000"}',
        {"phone": "13800138000"},
        ["13800138000"],
        [["13800138000"]],
        [{"phone": ["13800138000"]}],
        [{"phone": True}],
        [{"phone": "13800138000", "name": {"x": 1}}],
    ],
)
def test_invite_malformed_parties_is_minus_101(parties):
    assert _code(parse_invite, {"confid": "1", "parties": parties}) == "-101"


def test_parse_parties_not_needed_may_be_absent():
    assert parse_parties({}, needed=False) == ()
    assert parse_parties({"parties": []}, needed=False) == ()
    assert parse_parties({"parties": PARTIES}, needed=False) == EXPECTED_PARTIES


def test_nul_or_lone_surrogate_in_a_name_is_101() -> None:
    for name in ("a\x00b", "\ud800"):
        body = {"confid": "1", "parties": [{"name": name, "phone": "13800138000"}]}
        with pytest.raises(WireError) as caught:
            parse_invite(body)
        assert caught.value.status is Status.INVALID_PARAMETER


@given(
    st.lists(
        st.tuples(
            # any name a phone book can hold: no control character (C0, DEL, C1) and no
            # unpaired surrogate (those are -101); spaces around it are trimmed
            st.text(
                st.characters(blacklist_categories=("Cs", "Cc")),
                min_size=0,
                max_size=64,
            ).filter(lambda s: s == s.strip(" ")),
            st.from_regex(r"\A\+?[0-9]{3,20}(,[0-9*#]{1,16})?\Z"),
        ),
        min_size=1,
        max_size=8,
    ),
    st.booleans(),
)
def test_invite_round_trips_any_valid_parties(entries, as_string):
    parties = [{"name": name, "phone": phone} for name, phone in entries]
    value = json.dumps(parties, ensure_ascii=False) if as_string else parties
    invite = parse_invite({"confid": "c", "parties": value})
    assert [(p.name, p.phone.wire) for p in invite.parties] == entries


# ---- createMeeting --------------------------------------------------------------------------


def test_create_meeting_minimal():
    assert parse_create_meeting({}) == CreateMeeting()


def test_create_meeting_full():
    body = {
        "creator": "13800138000",
        "meetingname": "周会",
        "parties": json.dumps(PARTIES, ensure_ascii=False),
        "confid": "room_1-A",
        "srcclid": "02188886666",
        "dstclid": "+862188886666",
        "shownumber": "4001234567",
        "bookmeeting": "1",
        "booktime": "20991231235959",
        "maxmembers": "50",
        "customParm": "order-9",
    }
    assert parse_create_meeting(body) == CreateMeeting(
        creator=Phone("13800138000"),
        meeting_name="周会",
        parties=EXPECTED_PARTIES,
        confid="room_1-A",
        srcclid="02188886666",
        dstclid="+862188886666",
        shownumber="4001234567",
        book=True,
        book_time="20991231235959",
        max_members=50,
        custom_parm="order-9",
    )


@pytest.mark.parametrize("confid", ["1", "a" * 32, "AZaz09_-", "002", 7])
def test_create_meeting_confid_accepted(confid):
    assert parse_create_meeting({"confid": confid}).confid == str(confid)


@pytest.mark.parametrize("confid", ["a" * 33, "a b", "a.b", "会议", "a/b", "a+b", "a@b", 1.5])
def test_create_meeting_confid_pattern(confid):
    assert _code(parse_create_meeting, {"confid": confid}) == "-101"


@pytest.mark.parametrize("confid", [None, "", "   "])
def test_create_meeting_confid_absent_is_generated_later(confid):
    assert parse_create_meeting({"confid": confid}).confid is None


@pytest.mark.parametrize(("value", "expected"), [("1", 1), (1, 1), ("1000", 1000), (100, 100)])
def test_create_meeting_maxmembers_range(value, expected):
    assert parse_create_meeting({"maxmembers": value}).max_members == expected


@pytest.mark.parametrize("value", ["0", 0, "1001", 1001, -1, "many", "10.5", True])
def test_create_meeting_maxmembers_out_of_range(value):
    assert _code(parse_create_meeting, {"maxmembers": value}) == "-101"


def test_create_meeting_maxmembers_absent_is_none():
    assert parse_create_meeting({"maxmembers": ""}).max_members is None


@given(st.integers(min_value=-2000, max_value=3000))
def test_create_meeting_maxmembers_property(n):
    if 1 <= n <= 1000:
        assert parse_create_meeting({"maxmembers": n}).max_members == n
    else:
        assert _code(parse_create_meeting, {"maxmembers": str(n)}) == "-101"


def test_create_meeting_bookmeeting():
    booked = parse_create_meeting({"bookmeeting": "1", "booktime": "2099-12-31 23:59:59"})
    assert booked.book is True
    assert booked.book_time == "2099-12-31 23:59:59"
    numeric = parse_create_meeting({"bookmeeting": 1, "booktime": 20991231235959})
    assert numeric.book is True
    assert numeric.book_time == "20991231235959"


def test_create_meeting_not_booked_ignores_booktime():
    for body in ({"booktime": "20991231235959"}, {"bookmeeting": "0", "booktime": "x"}):
        parsed = parse_create_meeting(body)
        assert parsed.book is False
        assert parsed.book_time is None


@pytest.mark.parametrize("booktime", [None, "", "  "])
def test_create_meeting_booking_without_booktime_is_minus_2(booktime):
    body = {"bookmeeting": "1"} if booktime is None else {"bookmeeting": "1", "booktime": booktime}
    assert _code(parse_create_meeting, body) == "-2"


@pytest.mark.parametrize("flag", ["2", "yes", "true", -1, True])
def test_create_meeting_bad_bookmeeting_is_minus_101(flag):
    assert (
        _code(parse_create_meeting, {"bookmeeting": flag, "booktime": "20991231235959"}) == "-101"
    )


def test_create_meeting_name_length():
    assert parse_create_meeting({"meetingname": "会" * 64}).meeting_name == "会" * 64
    assert _code(parse_create_meeting, {"meetingname": "会" * 65}) == "-101"


def test_create_meeting_creator():
    assert parse_create_meeting({"creator": 13800138000}).creator == Phone("13800138000")
    assert parse_create_meeting({"creator": ""}).creator is None
    assert _code(parse_create_meeting, {"creator": "150****0804"}) == "-102"


@pytest.mark.parametrize("name", ["srcclid", "dstclid", "shownumber"])
def test_create_meeting_caller_ids(name):
    assert getattr(parse_create_meeting({name: 4001234567}), name) == "4001234567"
    assert getattr(parse_create_meeting({}), name) == ""
    assert _code(parse_create_meeting, {name: "400-123"}) == "-102"
    assert _code(parse_create_meeting, {name: "01053889900,1"}) == "-102"


def test_create_meeting_parties_optional_but_checked():
    assert parse_create_meeting({"parties": PARTIES}).parties == EXPECTED_PARTIES
    assert _code(parse_create_meeting, {"parties": [{"phone": "150****0804"}]}) == "-102"
    assert _code(parse_create_meeting, {"parties": [{"name": "no phone"}]}) == "-2"


def test_create_meeting_custom_parm():
    assert parse_create_meeting({"CustomParm": "a", "customParm": "b"}).custom_parm == "a"
    assert _code(parse_create_meeting, {"CustomParm": "x" * 257}) == "-101"


# ---- the other actions ----------------------------------------------------------------------


def test_meeting_ref():
    assert parse_meeting_ref({"confid": "002"}) == MeetingRef("002")
    assert parse_meeting_ref({"confid": 2}) == MeetingRef("2")
    assert _code(parse_meeting_ref, {}) == "-2"


def test_member_ref_normalises_phone():
    assert parse_member_ref({"confid": "1", "phone": 13800138000}) == MemberRef("1", "13800138000")
    assert parse_member_ref({"confid": "1", "phone": "01053889900,12"}) == MemberRef(
        "1", "01053889900,12"
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"phone": "13800138000"}, "-2"),
        ({"confid": "1"}, "-2"),
        ({"confid": "1", "phone": ""}, "-2"),
        ({"confid": "1", "phone": "150****0804"}, "-102"),
    ],
)
def test_member_ref_errors(body, code):
    assert _code(parse_member_ref, body) == code


def test_events_query_defaults_and_values():
    assert parse_events_query({"confid": "1"}) == EventsQuery("1", after=0, limit=100)
    assert parse_events_query({"confid": "1", "after": "42", "limit": 1000}) == EventsQuery(
        "1", after=42, limit=1000
    )
    assert parse_events_query({"confid": "1", "limit": 1}).limit == 1


@pytest.mark.parametrize(
    "extra", [{"after": -1}, {"limit": 0}, {"limit": 1001}, {"after": "x"}, {"limit": "10.5"}]
)
def test_events_query_bad_values(extra):
    assert _code(parse_events_query, {"confid": "1", **extra}) == "-101"


def test_events_query_requires_confid():
    assert _code(parse_events_query, {"after": 1}) == "-2"


@pytest.mark.parametrize(
    "phone", ["13800138000\n", "13800138000\r", "1380013\t8000", "13800138000\x85", "\n13800138000"]
)
def test_a_phone_with_a_control_character_is_refused_whole(phone):
    # Found by hardening (issue 11): a trailing newline used to be trimmed and accepted.
    with pytest.raises(WireError) as caught:
        parse_invite({"confid": "c", "parties": [{"phone": phone}]})
    assert caught.value.status is Status.INVALID_PARAMETER


@pytest.mark.parametrize("name", ["a\x07b", "line\nbreak", "c1\x9f", "del\x7f"])
def test_names_and_custom_parm_refuse_control_characters(name):
    for body in (
        {"confid": "c", "parties": [{"name": name, "phone": "13800138000"}]},
        {"confid": "c", "parties": [{"phone": "13800138000"}], "CustomParm": name},
    ):
        with pytest.raises(WireError) as caught:
            parse_invite(body)
        assert caught.value.status is Status.INVALID_PARAMETER


def test_spaces_around_a_value_are_still_forgiven():
    invite = parse_invite(
        {"confid": " c ", "parties": [{"name": " 张三 ", "phone": " 13800138000 "}]}
    )
    assert invite.confid == "c" and invite.parties[0].name == "张三"
    assert invite.parties[0].phone.wire == "13800138000"


def test_a_deeply_nested_parties_string_is_refused_not_an_internal_error():
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(WireError) as caught:
        parse_invite({"confid": "c", "parties": deep})
    assert caught.value.status is Status.INVALID_PARAMETER


def test_stop_prompt_takes_a_meeting_and_maybe_a_phone():
    from telemeeting.wire.actions import parse_stop_prompt

    assert parse_stop_prompt({"confid": "c"}).phone is None
    assert parse_stop_prompt({"confid": "c", "phone": "13800138000"}).phone == "13800138000"
    assert _code(parse_stop_prompt, {}) == "-2"
    for phone in ("12ab", "138\n", ""):
        with pytest.raises(WireError):
            parse_stop_prompt({"confid": "c", "phone": phone or "x"})


def test_a_booked_meeting_may_have_media_settings():
    booked = parse_create_meeting(
        {"bookmeeting": "1", "booktime": "2099-12-31 23:59:59", "record": "1", "beep": "2",
         "speakerevents": "1", "endoncreatorleave": "1", "creator": "13800138000"}
    )  # fmt: skip
    assert booked.book and booked.record and booked.beep == 2
    assert booked.speaker_events and booked.end_on_creator_leave
