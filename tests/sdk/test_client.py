"""The SDK end to end against a running server: every action, typed results, every error family.

Runs on SQLite and PostgreSQL (the `server` fixture's params), in both environments.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from telemeeting.client import (
    Accepted,
    AsyncClient,
    AuthError,
    CallRecord,
    CallState,
    Client,
    CreatedMeeting,
    Meeting,
    MeetingError,
    MeetingStateChange,
    Party,
    TeleMeetingError,
    TransportError,
    ValidationError,
)
from tests.servers import Server, Tenant, free_port

NORMAL, OTHER, LANDLINE = "13800138000", "13900139000", "01053889900"
BUSY = "13800000486"


def make_client(server: Server, tenant: Tenant, env: str = "sandbox", **overrides: str) -> Client:
    app = tenant.sandbox_app if env == "sandbox" else tenant.production_app
    options = {
        "account_sid": tenant.sid,
        "auth_token": tenant.token,
        "app_id": app,
        "base_url": server.base(env),
    }
    options.update(overrides)
    return Client(**options, retries=0)


@pytest.fixture(params=["sandbox", "production"])
def env(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def client(server: Server, tenant: Tenant, env: str) -> Iterator[Client]:
    with make_client(server, tenant, env) as sdk:
        yield sdk


def wait_for(
    client: Client, meid: str, predicate: Callable[[Meeting], bool], timeout: float = 10
) -> Meeting:
    deadline = time.monotonic() + timeout
    meeting = client.query_meeting(meid)
    while not predicate(meeting) and time.monotonic() < deadline:
        time.sleep(0.05)
        meeting = client.query_meeting(meid)
    assert predicate(meeting), meeting
    return meeting


def answered(*phones: str) -> Callable[[Meeting], bool]:
    def check(meeting: Meeting) -> bool:
        return all((m := meeting.member(p)) is not None and m.state == "answer" for p in phones)

    return check


def unique_confid() -> str:
    return f"sdk-{uuid.uuid4().hex[:16]}"


# ---- success paths ----------


def test_create_invite_query_with_typed_results(client: Client) -> None:
    created = client.create_meeting("周会", max_members=10)
    assert isinstance(created, CreatedMeeting)
    assert created.meid.isdigit() and len(created.request_id) == 29
    invited = client.invite(
        created.meid,
        [
            ("张三", NORMAL),
            {"name": "李四", "phone": OTHER},
            Party(LANDLINE, name="前台", extension="1234"),
        ],
        custom_parm="order-1",
    )
    assert isinstance(invited, Accepted) and invited.request_id.isdigit()
    meeting = wait_for(client, created.meid, answered(NORMAL, OTHER, "01053889900,1234"))
    assert isinstance(meeting, Meeting)
    assert (meeting.meid, meeting.name, meeting.state, meeting.max_members) == (
        created.meid,
        "周会",
        "active",
        10,
    )
    assert not meeting.ended and meeting.settled
    assert isinstance(meeting.create_time, datetime) and meeting.end_time is None
    assert [(m.name, m.phone) for m in meeting.members] == [
        ("张三", NORMAL),
        ("李四", OTHER),
        ("前台", "01053889900,1234"),
    ]
    zhang = meeting.member(NORMAL)
    assert zhang is not None
    assert zhang.state_desc == "接听" and zhang.request_id == invited.request_id
    assert isinstance(zhang.join_time, datetime) and zhang.leave_time is None
    assert abs(zhang.join_time - datetime.now(UTC)) < timedelta(minutes=1)
    assert zhang.muted is False and zhang.was_answered and zhang.reason == ""


def test_invite_accepts_a_single_party_and_extension_in_the_phone(client: Client) -> None:
    meid = client.create_meeting().meid
    client.invite(meid, Party(NORMAL, name="solo"))
    client.invite(meid, "01053889900,99#")
    meeting = wait_for(client, meid, answered(NORMAL, "01053889900,99#"))
    assert meeting.member(NORMAL).name == "solo"  # type: ignore[union-attr]


def test_create_meeting_with_every_parameter(client: Client) -> None:
    confid = unique_confid()
    created = client.create_meeting(
        "all params",
        creator=NORMAL,
        parties=[("李四", OTHER)],
        confid=confid,
        srcclid="4008000000",
        dstclid="4008000001",
        shownumber="4008000002",
        max_members=5,
        custom_parm="cp-1",
        idempotency_key=f"create-{confid}",
    )
    assert created.meid == confid
    meeting = wait_for(client, confid, answered(NORMAL, OTHER))
    assert [m.phone for m in meeting.members] == [NORMAL, OTHER]
    events = client.meeting_events(confid)
    custom = {e.events[0].custom_parm for e in events if isinstance(e.events[0], CallState)}
    assert custom == {"cp-1"}


def test_booked_meeting(client: Client) -> None:
    created = client.create_meeting("later", book_time=datetime.now(UTC) + timedelta(hours=2))
    assert client.query_meeting(created.meid).state == "booked"
    client.destroy_meeting(created.meid)
    assert client.query_meeting(created.meid).ended


def test_destroy_then_events_are_typed_and_ordered(client: Client) -> None:
    meid = client.create_meeting().meid
    client.invite(meid, [("a", NORMAL), ("b", BUSY)], custom_parm="x")
    wait_for(client, meid, lambda m: m.settled and len(m.members) == 2)
    destroyed = client.destroy_meeting(meid)
    assert destroyed.request_id.isdigit()
    meeting = client.query_meeting(meid)
    assert meeting.ended and meeting.end_time is not None
    assert meeting.member(NORMAL).reason == "会议结束"  # type: ignore[union-attr]
    assert meeting.member(BUSY).reason == "用户忙"  # type: ignore[union-attr]

    events = client.meeting_events(meid)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all(e.event_id for e in events)
    typed = [t for e in events for t in e.events]
    states = [t for t in typed if isinstance(t, MeetingStateChange)]
    assert [s.state for s in states] == ["start", "end"]
    disconnects = {t.phone: t.reason for t in typed if isinstance(t, CallState) and t.reason}
    assert disconnects == {NORMAL: "会议结束", BUSY: "用户忙"}
    records = [t for t in typed if isinstance(t, CallRecord)]
    assert sorted(r.called for r in records) == sorted([NORMAL, BUSY])
    assert all(r.meid == meid and r.tapes_url == "NoTapes" for r in records)

    page = client.meeting_events(meid, after=2, limit=3)
    assert [e.seq for e in page] == [3, 4, 5]
    assert [e.seq for e in client.iter_meeting_events(meid, page_size=2)] == [e.seq for e in events]


def test_mute_unmute_kick(client: Client) -> None:
    meid = client.create_meeting().meid
    client.invite(meid, [("a", NORMAL), ("b", OTHER)])
    wait_for(client, meid, answered(NORMAL, OTHER))
    assert client.mute_member(meid, NORMAL).request_id
    assert client.query_meeting(meid).member(NORMAL).muted is True  # type: ignore[union-attr]
    client.unmute_member(meid, NORMAL)
    assert client.query_meeting(meid).member(NORMAL).muted is False  # type: ignore[union-attr]
    client.kick_member(meid, OTHER)
    kicked = wait_for(client, meid, lambda m: m.member(OTHER).state == "disconnect")  # type: ignore[union-attr]
    assert kicked.member(OTHER).reason == "被踢出"  # type: ignore[union-attr]
    with pytest.raises(MeetingError) as info:
        client.kick_member(meid, OTHER)
    assert info.value.status_code == "-304"


# ---- errors: each family, with the exception's fields ----------


def _assert_error(info: pytest.ExceptionInfo[TeleMeetingError], code: str, msg: str) -> None:
    error = info.value
    assert (error.status_code, error.status_msg, error.request_id) == (code, msg, "")
    assert code in str(error) and msg in str(error)
    assert error.body["statusCode"] == code


def test_unknown_account_is_200(server: Server, tenant: Tenant, env: str) -> None:
    with (
        make_client(server, tenant, env, account_sid=uuid.uuid4().hex) as client,
        pytest.raises(AuthError) as info,
    ):
        client.query_meeting("1")
    _assert_error(info, "-200", "无此用户")


def test_wrong_token_is_203(server: Server, tenant: Tenant, env: str) -> None:
    with (
        make_client(server, tenant, env, auth_token="wrong-token") as client,
        pytest.raises(AuthError) as info,
    ):
        client.create_meeting()
    _assert_error(info, "-203", "AuthToken验证失败")


def test_wrong_app_is_205(server: Server, tenant: Tenant, env: str) -> None:
    other_env_app = tenant.production_app if env == "sandbox" else tenant.sandbox_app
    for app in (other_env_app, uuid.uuid4().hex):
        with (
            make_client(server, tenant, env, app_id=app) as client,
            pytest.raises(AuthError) as info,
        ):
            client.create_meeting()
        _assert_error(info, "-205", "应用验证失败")


@pytest.mark.parametrize(
    ("call", "code", "msg"),
    [
        (lambda c, meid: c.create_meeting(max_members=0), "-101", "参数不合法"),
        (lambda c, meid: c.create_meeting(confid="has space"), "-101", "参数不合法"),
        (lambda c, meid: c.invite(meid, [("x", "150****0804")]), "-102", "电话号码不合法"),
        (lambda c, meid: c.create_meeting(creator="abc"), "-102", "电话号码不合法"),
        (lambda c, meid: c.invite(meid, []), "-2", "缺少必要参数"),
        (lambda c, meid: c.invite("", [NORMAL]), "-2", "缺少必要参数"),
    ],
)
def test_validation_errors(client: Client, call: Callable, code: str, msg: str) -> None:
    meid = client.create_meeting().meid
    with pytest.raises(ValidationError) as info:
        call(client, meid)
    _assert_error(info, code, msg)
    assert client.query_meeting(meid).members == ()  # nothing was dialled


def test_meeting_errors(client: Client) -> None:
    with pytest.raises(MeetingError) as info:
        client.query_meeting("no-such-meeting")
    _assert_error(info, "-300", "会议不存在")

    meid = client.create_meeting().meid
    client.invite(meid, NORMAL)
    with pytest.raises(MeetingError) as info:
        client.invite(meid, NORMAL)
    _assert_error(info, "-303", "成员已在会议中")

    with pytest.raises(MeetingError) as info:
        client.mute_member(meid, OTHER)
    _assert_error(info, "-304", "成员不存在")

    client.destroy_meeting(meid)
    with pytest.raises(MeetingError) as info:
        client.destroy_meeting(meid)
    _assert_error(info, "-301", "会议已结束")


def test_unreachable_server_is_a_transport_error(tenant: Tenant) -> None:
    client = Client(
        tenant.sid,
        tenant.token,
        tenant.sandbox_app,
        f"http://127.0.0.1:{free_port()}",
        retries=1,
        backoff=0.01,
    )
    with client, pytest.raises(TransportError) as info:
        client.query_meeting("1")
    assert info.value.status_code == "" and "ConnectError" in info.value.status_msg
    assert isinstance(info.value, TeleMeetingError)


def test_credentials_from_the_environment(
    server: Server, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEMEETING_ACCOUNT_SID", tenant.sid)
    monkeypatch.setenv("TELEMEETING_AUTH_TOKEN", tenant.token)
    monkeypatch.setenv("TELEMEETING_APP_ID", tenant.sandbox_app)
    monkeypatch.setenv("TELEMEETING_BASE_URL", server.sandbox_url)
    with Client() as client:
        assert client.create_meeting().meid


# ---- the async client ----------


async def test_async_client_end_to_end(server: Server, tenant: Tenant) -> None:
    async with AsyncClient(
        tenant.sid, tenant.token, tenant.production_app, server.production_url
    ) as client:
        created = await client.create_meeting("async", idempotency_key=uuid.uuid4().hex)
        invited = await client.invite(created.meid, [("张三", NORMAL), Party(BUSY)])
        deadline = time.monotonic() + 10
        meeting = await client.query_meeting(created.meid)
        while not (meeting.settled and len(meeting.members) == 2):
            assert time.monotonic() < deadline, meeting
            await asyncio.sleep(0.05)
            meeting = await client.query_meeting(created.meid)
        assert meeting.member(NORMAL).request_id == invited.request_id  # type: ignore[union-attr]
        await client.mute_member(created.meid, NORMAL)
        await client.unmute_member(created.meid, NORMAL)
        await client.kick_member(created.meid, NORMAL)
        events = [e async for e in client.iter_meeting_events(created.meid, page_size=3)]
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert events == await client.meeting_events(created.meid, limit=1000)
        with pytest.raises(MeetingError) as info:
            await client.destroy_meeting("no-such-meeting")
        assert info.value.status_code == "-300"


async def test_async_client_concurrent_calls_and_auth_error(server: Server, tenant: Tenant) -> None:
    async with AsyncClient(
        tenant.sid, tenant.token, tenant.sandbox_app, server.sandbox_url
    ) as client:
        created = await asyncio.gather(*(client.create_meeting(f"m{i}") for i in range(5)))
        assert len({c.meid for c in created}) == 5
    async with AsyncClient(tenant.sid, "bad", tenant.sandbox_app, server.sandbox_url) as client:
        with pytest.raises(AuthError) as info:
            await client.query_meeting(created[0].meid)
        assert (info.value.status_code, info.value.request_id) == ("-203", "")
