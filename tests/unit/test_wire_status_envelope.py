"""The status-code table and the response envelope (spec §4)."""

from __future__ import annotations

import json

import pytest

from telemeeting.wire.envelope import CONTENT_TYPE, dump, envelope
from telemeeting.wire.status import Status, WireError

# Spec §4, verbatim.
SPEC_TABLE = {
    "0": "提交成功",
    "-1": "号码无效",
    "-2": "缺少必要参数",
    "-3": "无效action",
    "-4": "无效的JSON",
    "-100": "异常错误",
    "-101": "参数不合法",
    "-102": "电话号码不合法",
    "-104": "请求频率过高",
    "-200": "无此用户",
    "-201": "用户状态失效",
    "-202": "包头验证信息错误",
    "-203": "AuthToken验证失败",
    "-204": "账户余额不足",
    "-205": "应用验证失败",
    "-300": "会议不存在",
    "-301": "会议已结束",
    "-302": "会议人数已满",
    "-303": "成员已在会议中",
    "-304": "成员不存在",
}


#: Members beyond the spec's table: the same code with a message of our own (docs/api.md).
EXTENSIONS = {
    Status.OVERLOADED: Status.RATE_LIMITED,
    Status.DATABASE_UNAVAILABLE: Status.RATE_LIMITED,
}


def test_status_table_matches_spec_exactly():
    assert {s.code: s.message for s in Status if s not in EXTENSIONS} == SPEC_TABLE
    assert len(Status) == len(SPEC_TABLE) + len(EXTENSIONS)


def test_extensions_reuse_a_code_with_a_distinct_message():
    for extension, contract in EXTENSIONS.items():
        assert extension.code == contract.code and extension.message != contract.message
        assert Status.from_code(extension.code) is contract
    assert Status.OVERLOADED.message == "服务器繁忙，请稍后重试"


def test_codes_are_strings():
    assert all(isinstance(s.code, str) and isinstance(s.message, str) for s in Status)


@pytest.mark.parametrize(
    ("member", "code"),
    [
        (Status.OK, "0"),
        (Status.MISSING_PARAMETER, "-2"),
        (Status.INVALID_JSON, "-4"),
        (Status.INVALID_PARAMETER, "-101"),
        (Status.INVALID_PHONE, "-102"),
        (Status.BAD_AUTHORIZATION, "-202"),
        (Status.BAD_SIGN, "-203"),
        (Status.MEETING_NOT_FOUND, "-300"),
        (Status.MEMBER_NOT_FOUND, "-304"),
    ],
)
def test_named_members(member, code):
    assert member.code == code


def test_from_code():
    for status in Status:
        assert Status.from_code(status.code) is EXTENSIONS.get(status, status)
    assert Status.from_code(-2) is Status.MISSING_PARAMETER
    assert Status.from_code(0) is Status.OK
    assert Status.from_code("-999") is None
    assert Status.from_code("") is None


def test_wire_error_carries_status_and_detail():
    err = WireError(Status.INVALID_PHONE, "bad phone '1'")
    assert err.status is Status.INVALID_PHONE
    assert err.detail == "bad phone '1'"
    assert str(err) == "-102 电话号码不合法: bad phone '1'"
    assert isinstance(err, Exception)


def test_wire_error_without_detail():
    err = WireError(Status.MISSING_PARAMETER)
    assert err.detail == ""
    assert str(err) == "-2 缺少必要参数"


# ---- envelope -------------------------------------------------------------------------------


def test_success_envelope_bytes():
    body = envelope(Status.OK, "20261128143015000000000000001")
    assert (
        dump(body)
        == (
            '{"statusCode":"0","statusMsg":"提交成功","requestId":"20261128143015000000000000001"}'
        ).encode()
    )


def test_error_envelope_matches_the_seed():
    assert dump(envelope(Status.MISSING_PARAMETER)) == (
        '{"statusCode":"-2","statusMsg":"缺少必要参数","requestId":""}'.encode()
    )


def test_key_order_with_extras():
    body = envelope(Status.OK, "1", meid="002", meeting={"b": 1, "a": 2})
    assert list(body) == ["statusCode", "statusMsg", "requestId", "meid", "meeting"]
    raw = dump(body)
    assert raw.startswith(b'{"statusCode":"0","statusMsg":"')
    assert list(json.loads(raw)) == ["statusCode", "statusMsg", "requestId", "meid", "meeting"]
    # Nested objects keep their own insertion order too.
    assert b'"meeting":{"b":1,"a":2}' in raw


def test_dump_is_compact_utf8_with_chinese_unescaped():
    raw = dump({"name": "张三", "list": [1, 2], "obj": {"k": "v"}})
    assert raw == '{"name":"张三","list":[1,2],"obj":{"k":"v"}}'.encode()
    assert b"\\u" not in raw
    assert b" " not in raw
    assert "张三".encode() in raw


def test_every_status_round_trips_through_dump():
    for status in Status:
        decoded = json.loads(dump(envelope(status)).decode("utf-8"))
        assert decoded == {"statusCode": status.code, "statusMsg": status.message, "requestId": ""}


def test_content_type():
    assert CONTENT_TYPE == "application/json;charset=utf-8"
