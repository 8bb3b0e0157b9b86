"""The lenient body parser (spec §1 and §5): what it accepts, and that it repairs nothing else."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telemeeting.wire.actions import parse_invite
from telemeeting.wire.body import MAX_BODY_BYTES, parse_body
from telemeeting.wire.phones import Phone
from telemeeting.wire.status import Status, WireError

BOM = b"\xef\xbb\xbf"
SEED_PATH = Path("/work/shared/seeds/inviteJoinMeeting.txt")

# The seed's example body, verbatim: the parties string embeds an array with unescaped inner
# quotes, and a newline between the two party objects.
SEED_BODY = (
    '{"action":"inviteJoinMeeting",\n'
    '"appid":"ff8080813fc70a7b013fc72312324213",\n'
    '"confid":"002",\n'
    '"parties":"[{"name":"张三","phone":"150****0804"},\n'
    '{"name":"李四","phone":"136****7556"}]"}'
)


def _code(raw: bytes) -> str:
    with pytest.raises(WireError) as info:
        parse_body(raw)
    return info.value.status.code


def test_plain_object():
    assert parse_body(b'{"action":"createMeeting","appid":"a"}') == {
        "action": "createMeeting",
        "appid": "a",
    }


def test_utf8_chinese():
    assert parse_body('{"meetingname":"周会"}'.encode()) == {"meetingname": "周会"}


def test_bom_is_ignored():
    assert parse_body(BOM + b'{"a":"1"}') == {"a": "1"}


def test_only_one_bom_is_ignored():
    assert _code(BOM + BOM + b'{"a":"1"}') == "-4"


def test_surrounding_whitespace_is_fine():
    assert parse_body(b' \r\n{"a":1}\n ') == {"a": 1}


@pytest.mark.parametrize(
    "raw",
    [
        '{"meetingname":"周会"}'.encode("gbk"),
        '{"meetingname":"café"}'.encode("latin-1"),
        b'{"a":"\xff"}',
        b"\xff\xfe{\x00}\x00",
        '{"a":"1"}'.encode("utf-16"),
    ],
)
def test_non_utf8_is_invalid_json(raw):
    assert _code(raw) == "-4"


@pytest.mark.parametrize(
    "raw",
    [b"[]", b'[{"a":1}]', b'"text"', b"1", b"null", b"true", b"", b"   ", BOM],
)
def test_non_object_is_invalid_json(raw):
    assert _code(raw) == "-4"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":1,}',  # trailing comma
        b"{'a':1}",  # single quotes
        b"{a:1}",  # unquoted key
        b'{"a":1',  # truncated
        b'{"a":"1"} {"b":"2"}',  # two documents
        b'{"a":"x\ny"}',  # raw control character in a string
        b"action=createMeeting&appid=a",  # form encoding is not understood
    ],
)
def test_nothing_else_is_repaired(raw):
    assert _code(raw) == "-4"


@pytest.mark.parametrize("raw", [b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}'])
def test_non_json_number_literals_are_invalid_json(raw):
    """NaN / Infinity are not JSON (RFC 8259); Python's json.loads accepts them by default."""
    assert _code(raw) == "-4"


# ---- size limit -----------------------------------------------------------------------------


def _padded(total: int, prefix: bytes = b"") -> bytes:
    head = prefix + b'{"pad":"'
    tail = b'"}'
    return head + b"x" * (total - len(head) - len(tail)) + tail


def test_body_of_exactly_64_kib_is_accepted():
    raw = _padded(MAX_BODY_BYTES)
    assert len(raw) == 64 * 1024
    assert parse_body(raw)["pad"] == "x" * (MAX_BODY_BYTES - 10)


def test_body_over_64_kib_is_invalid_parameter():
    raw = _padded(MAX_BODY_BYTES + 1)
    with pytest.raises(WireError) as info:
        parse_body(raw)
    assert info.value.status is Status.INVALID_PARAMETER
    assert info.value.status.code == "-101"


def test_oversize_wins_over_bad_json():
    assert _code(b"x" * (MAX_BODY_BYTES + 1)) == "-101"


# ---- the seed's example ---------------------------------------------------------------------


def test_seed_example_body_parses():
    body = parse_body(SEED_BODY.encode())
    assert body["action"] == "inviteJoinMeeting"
    assert body["appid"] == "ff8080813fc70a7b013fc72312324213"
    assert body["confid"] == "002"
    assert isinstance(body["parties"], str)
    assert json.loads(body["parties"]) == [
        {"name": "张三", "phone": "150****0804"},
        {"name": "李四", "phone": "136****7556"},
    ]


def test_seed_example_body_is_taken_from_the_seed_file():
    text = SEED_PATH.read_text(encoding="utf-8")
    start = text.index('{"action":"inviteJoinMeeting"')
    end = text.index('}]"}', start) + len('}]"}')
    raw = text[start:end]
    assert raw == SEED_BODY
    assert len(parse_body(raw.encode())["parties"]) > 0


def test_seed_example_then_masked_phone_is_invalid_phone():
    body = parse_body(SEED_BODY.encode())
    with pytest.raises(WireError) as info:
        parse_invite(body)
    assert info.value.status.code == "-102"


def test_seed_style_with_real_phones_gives_parties():
    raw = SEED_BODY.replace("150****0804", "15012340804").replace("136****7556", "13612347556")
    invite = parse_invite(parse_body(raw.encode()))
    assert invite.confid == "002"
    assert [(p.name, p.phone) for p in invite.parties] == [
        ("张三", Phone("15012340804")),
        ("李四", Phone("13612347556")),
    ]


def test_seed_style_with_bom_and_parties_not_last():
    raw = '{"parties":"[{"name":"王五","phone":"01053889900,1234"}]", "confid":"7"}'
    body = parse_body(BOM + raw.encode())
    assert body["confid"] == "7"
    assert json.loads(body["parties"]) == [{"name": "王五", "phone": "01053889900,1234"}]


def test_seed_style_with_spaces_around_colon():
    raw = '{"confid":"7", "parties" : "[{"phone":"13800138000"}]" }'
    assert json.loads(parse_body(raw.encode())["parties"]) == [{"phone": "13800138000"}]


def test_seed_style_repair_does_not_excuse_another_error():
    raw = '{"confid":"7",, "parties":"[{"phone":"13800138000"}]"}'
    assert _code(raw.encode()) == "-4"
    raw = '{"confid":"7", "parties":"[{"phone":"13800138000"}]",}'
    assert _code(raw.encode()) == "-4"


def test_seed_style_repair_only_applies_to_parties():
    raw = '{"confid":"7", "members":"[{"phone":"13800138000"}]"}'
    assert _code(raw.encode()) == "-4"


def test_properly_escaped_parties_string_is_untouched():
    parties = [{"name": "张三", "phone": "13800138000"}]
    raw = json.dumps({"parties": json.dumps(parties, ensure_ascii=False)}, ensure_ascii=False)
    assert json.loads(parse_body(raw.encode())["parties"]) == parties


# ---- properties -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6), st.booleans())
def test_any_json_object_round_trips(obj, bom):
    raw = json.dumps(obj, ensure_ascii=False).encode()
    assert parse_body((BOM if bom else b"") + raw) == obj


@given(json_values.filter(lambda v: not isinstance(v, dict)))
def test_any_non_object_is_rejected(value):
    assert _code(json.dumps(value).encode()) == "-4"


@pytest.mark.parametrize(
    "crafted",
    [
        '{"parties":"[' * 5_000,  # the seed's shape repeated: was 3.9 s of backtracking
        '{"parties":"[' + ']"' * 20_000,  # many closing candidates, none followed by , or }
        '{"parties":"[' + ' ' * 60_000,
        '{"a":"' + '"parties":"[]" ' * 4_000 + "}",
    ],
)
def test_crafted_bodies_are_refused_in_linear_time(crafted):
    # Issue 11: the repair of the seed's unescaped parties must not backtrack. Bound loosely
    # (the quadratic parser took seconds on these); the benchmark measures the real cost.
    raw = crafted.encode()[: 64 * 1024]
    started = time.perf_counter()
    with pytest.raises(WireError) as caught:
        parse_body(raw)
    assert time.perf_counter() - started < 0.25
    assert caught.value.status is Status.INVALID_JSON

