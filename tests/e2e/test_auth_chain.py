"""Spec §1 and §3: routing, the authentication chain in its order, over real HTTP."""

from __future__ import annotations

import base64
import time
from datetime import timedelta

import pytest

from telemeeting.wire.auth import make_authorization, make_sign
from tests.servers import Api, Server, cli_json, now_timestamp, run_cli

QUERY = {"action": "queryMeeting", "confid": "nope"}


def _expect(reply, code: str, msg: str, http_status: int = 200) -> None:
    assert reply.http_status == http_status, reply.body
    assert reply.body["statusCode"] == code, reply.body
    assert reply.body["statusMsg"] == msg
    assert list(reply.body)[:3] == ["statusCode", "statusMsg", "requestId"]
    assert reply.headers["content-type"] == "application/json;charset=utf-8"


def _eventually(send, code: str, timeout: float = 5.0):
    """Operator changes reach a running server within a second (accounts and apps are cached)."""
    deadline = time.monotonic() + timeout
    reply = send()
    while reply.code != code and time.monotonic() < deadline:
        time.sleep(0.1)
        reply = send()
    return reply


# ---- §1 transport ----------


@pytest.mark.parametrize(
    "path",
    [
        "/201512/sid/{sid}/call/TeleMeeting.wx",
        "/201612/sid/{sid}/sms/TeleMeeting.wx",
        "/201612/sid/{sid}/call/Other.wx",
        "/201612/sid/{sid}/call",
        "/",
        "/201612/acct/{sid}/call/TeleMeeting.wx",
    ],
)
def test_unknown_paths_are_404_with_envelope(api: Api, path: str) -> None:
    reply = api.post(QUERY, path=path.format(sid=api.tenant.sid))
    _expect(reply, "-3", "无效action", 404)
    assert reply.body["requestId"] == ""


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405(api: Api, method: str) -> None:
    reply = api.post(QUERY, method=method)
    _expect(reply, "-100", "异常错误", 405)


def test_body_over_64_kib_is_101(api: Api) -> None:
    body = '{"action":"queryMeeting","appid":"x","pad":"' + "a" * (64 * 1024) + '"}'
    _expect(api.post(body), "-101", "参数不合法")


# ---- step 1: the account ----------


def test_unknown_account_is_200(api: Api) -> None:
    _expect(api.post(QUERY, sid="0" * 32), "-200", "无此用户")


def test_disabled_account_is_201(server: Server) -> None:
    tenant = server.new_tenant()
    api = Api(server, tenant)
    assert api.post(QUERY).code == "-300"
    run_cli("account", "disable", tenant.sid, db=server.db)
    _expect(_eventually(lambda: api.post(QUERY), "-201"), "-201", "用户状态失效")
    # -201 comes before any header check
    _expect(api.post(QUERY, authorization=""), "-201", "用户状态失效")


# ---- step 2: the Authorization header ----------


@pytest.mark.parametrize(
    "authorization",
    [
        "",  # missing
        "%%%not base64%%%",
        base64.b64encode(b"no separator here").decode(),
        base64.b64encode(b"|20261128120000").decode(),
        base64.b64encode(b"{sid}|2026-11-28 12:00:00").decode(),
        base64.b64encode(b"{sid}|2026112812").decode(),
        "Basic {ok}",  # a scheme prefix is not part of the contract
    ],
)
def test_malformed_authorization_is_202(api: Api, authorization: str) -> None:
    ok = make_authorization(api.tenant.sid, now_timestamp())
    if "{sid}" in authorization:
        raw = base64.b64decode(authorization).decode().replace("{sid}", api.tenant.sid)
        authorization = base64.b64encode(raw.encode()).decode()
    authorization = authorization.replace("{ok}", ok)
    _expect(api.post(QUERY, authorization=authorization), "-202", "包头验证信息错误")


def test_authorization_for_another_account_is_202(api: Api, server: Server) -> None:
    other = server.new_tenant()
    ts = now_timestamp()
    reply = api.post(
        QUERY,
        authorization=make_authorization(other.sid, ts),
        sign=make_sign(other.sid, other.token, ts),
    )
    _expect(reply, "-202", "包头验证信息错误")


@pytest.mark.parametrize("hours", [-25, 25])
def test_timestamp_outside_24_hours_is_202(api: Api, hours: int) -> None:
    reply = api.post(QUERY, timestamp=now_timestamp(timedelta(hours=hours)))
    _expect(reply, "-202", "包头验证信息错误")


@pytest.mark.parametrize("hours", [-23, 23])
def test_timestamp_inside_24_hours_is_accepted(api: Api, hours: int) -> None:
    reply = api.post(QUERY, timestamp=now_timestamp(timedelta(hours=hours)))
    assert reply.code == "-300", reply.body  # got past auth to the action


def test_timestamp_in_utc_instead_of_beijing_is_still_inside_window(api: Api) -> None:
    reply = api.post(QUERY, timestamp=now_timestamp(timedelta(hours=-8)))
    assert reply.code == "-300"


# ---- step 3: the Sign ----------


def test_missing_sign_is_203(api: Api) -> None:
    path = f"/201612/sid/{api.tenant.sid}/call/TeleMeeting.wx"
    _expect(api.post(QUERY, path=path), "-203", "AuthToken验证失败")


def test_wrong_sign_is_203(api: Api) -> None:
    _expect(api.post(QUERY, sign="0" * 32), "-203", "AuthToken验证失败")
    _expect(api.post(QUERY, token="f" * 32), "-203", "AuthToken验证失败")


def test_sign_with_another_timestamp_is_203(api: Api) -> None:
    ts, other = now_timestamp(), now_timestamp(timedelta(seconds=-5))
    reply = api.post(QUERY, timestamp=ts, sign=make_sign(api.tenant.sid, api.tenant.token, other))
    _expect(reply, "-203", "AuthToken验证失败")


@pytest.mark.parametrize("lower", [True, False])
def test_sign_is_case_insensitive(api: Api, lower: bool) -> None:
    assert api.post(QUERY, lower_sign=lower).code == "-300"


# ---- steps 4-6: body, action, appid ----------


@pytest.mark.parametrize("body", ["not json", "[1,2]", '{"action": "queryMeeting",', ""])
def test_body_not_json_is_4(api: Api, body: str) -> None:
    _expect(api.post(body), "-4", "无效的JSON")


def test_auth_is_checked_before_json(api: Api) -> None:
    _expect(api.post("not json", sign="0" * 32), "-203", "AuthToken验证失败")


def test_missing_action_is_2(api: Api) -> None:
    _expect(api.post({"confid": "1"}), "-2", "缺少必要参数")
    assert api.post({"confid": "1"}).body["requestId"] == ""


@pytest.mark.parametrize(
    "action", ["createmeeting", "CreateMeeting", "dropMeeting", "callDailBack"]
)
def test_unknown_or_miscased_action_is_3(api: Api, action: str) -> None:
    _expect(api.post({"action": action}), "-3", "无效action")


def test_action_on_wrong_func_url_is_3(api: Api) -> None:
    reply = api.post({"action": "createMeeting"}, func_url="MeetingQuery.wx")
    _expect(reply, "-3", "无效action")


def test_query_meeting_on_both_func_urls(api: Api) -> None:
    meid = api.create_meeting()
    for func_url in ("MeetingQuery.wx", "TeleMeeting.wx"):
        reply = api.post({"action": "queryMeeting", "confid": meid}, func_url=func_url)
        assert reply.code == "0" and reply.body["meeting"]["meid"] == meid


def test_missing_appid_is_2(api: Api) -> None:
    reply = api.post('{"action":"queryMeeting","confid":"1"}')
    _expect(reply, "-2", "缺少必要参数")


def test_unknown_app_is_205(api: Api) -> None:
    _expect(api.post({**QUERY, "appid": "f" * 32}), "-205", "应用验证失败")


def test_app_of_another_account_is_205(api: Api, server: Server) -> None:
    other = server.new_tenant()
    _expect(api.post({**QUERY, "appid": other.sandbox_app}), "-205", "应用验证失败")


def test_app_in_the_other_environment_is_205(api: Api) -> None:
    _expect(
        api.post({**QUERY, "appid": api.tenant.production_app}, env="sandbox"),
        "-205",
        "应用验证失败",
    )
    _expect(
        api.post({**QUERY, "appid": api.tenant.sandbox_app}, env="production"),
        "-205",
        "应用验证失败",
    )
    assert api.post(QUERY, env="production").code == "-300"


def test_offline_production_app_is_205_until_online(api: Api, server: Server) -> None:
    app = cli_json(
        "app",
        "create",
        "--account",
        api.tenant.sid,
        "--env",
        "production",
        "--offline",
        db=server.db,
    )
    assert app["online"] is False
    _expect(api.post({**QUERY, "appid": app["appid"]}, env="production"), "-205", "应用验证失败")
    run_cli("app", "update", app["appid"], "--online", db=server.db)
    reply = _eventually(
        lambda: api.post({**QUERY, "appid": app["appid"]}, env="production"), "-300"
    )
    assert reply.code == "-300"


def test_app_without_meeting_feature_is_205(api: Api, server: Server) -> None:
    appid = server.make_app(api.tenant.sid, "sandbox", features="sms")
    _expect(api.post({**QUERY, "appid": appid}), "-205", "应用验证失败")


@pytest.mark.parametrize(
    ("whitelist", "allowed"),
    [
        ("10.0.0.1", False),
        ("10.0.0.1,127.0.0.1", True),
        ("10.0.0.0/8, 127.0.0.0/8", True),
        ("192.168.0.0/16", False),
        ("::1,127.0.0.2", False),
    ],
)
def test_ip_whitelist(api: Api, server: Server, whitelist: str, allowed: bool) -> None:
    appid = server.make_app(api.tenant.sid, "production", ip_whitelist=whitelist)
    reply = api.post({**QUERY, "appid": appid}, env="production")
    assert reply.code == ("-300" if allowed else "-205"), reply.body


def test_forwarded_for_is_ignored_from_untrusted_peers(api: Api, server: Server) -> None:
    appid = server.make_app(api.tenant.sid, "production", ip_whitelist="203.0.113.7")
    reply = api.post(
        {**QUERY, "appid": appid}, env="production", headers={"X-Forwarded-For": "203.0.113.7"}
    )
    _expect(reply, "-205", "应用验证失败")


def test_sandbox_ignores_whitelist_setting(api: Api, server: Server) -> None:
    appid = server.make_app(api.tenant.sid, "sandbox", ip_whitelist="10.0.0.1")
    assert api.post({**QUERY, "appid": appid}).code == "-300"


def test_no_balance_is_204(server: Server) -> None:
    """Only actions that dial are refused, and only for production apps (sandbox is free)."""
    api = Api(server, server.new_tenant(balance=0))
    create = {"action": "createMeeting"}
    _expect(api.post(create, env="production"), "-204", "账户余额不足")
    wrong_app = api.post({**create, "appid": "f" * 32}, env="production")
    _expect(wrong_app, "-205", "应用验证失败")  # -205 comes first
    assert api.post(QUERY, env="production").code == "-300"
    assert api.post(create).code == "0"
