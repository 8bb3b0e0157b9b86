"""The SDK and the client CLI for issue 14's extensions, against a real server on the simulated
carrier: recording (typed Recording with a working link), speaker events (typed pushes and
Member.speaking), joining muted, mute all, hold, prompts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from telemeeting.client import (
    AsyncClient,
    Client,
    MeetingError,
    MeetingStateChange,
    Party,
    ValidationError,
)
from tests.servers import Server, Tenant, start_server

pytestmark = pytest.mark.timeout(120)

PHONES = ["13800000001", "13800000002", "13800000003"]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Server, Tenant]]:
    env = {"TELEMEETING_RECORDINGS_DIRECTORY": str(tmp_path / "recordings")}
    server = start_server(f"sqlite+aiosqlite:///{tmp_path / 'tm.db'}", tmp_path, env)
    try:
        yield server, server.new_tenant()
    finally:
        server.stop()


def _client(server: Server, tenant: Tenant) -> Client:
    return Client(
        tenant.sid, tenant.token, tenant.sandbox_app, base_url=server.sandbox_url, retries=0
    )


def _wait(client: Client, meid: str, check, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    meeting = client.query_meeting(meid)
    while not check(meeting) and time.monotonic() < deadline:
        time.sleep(0.1)
        meeting = client.query_meeting(meid)
    assert check(meeting), meeting
    return meeting


def test_recording_speakers_and_member_controls(served: tuple[Server, Tenant]) -> None:
    server, tenant = served
    with _client(server, tenant) as client:
        meid = client.create_meeting(
            "media",
            creator=PHONES[0],
            parties=[Party(PHONES[1], muted=True), PHONES[2]],
            record=True,
            beep=1,
            speaker_events=True,
        ).meid
        meeting = _wait(client, meid, lambda m: all(x.state == "answer" for x in m.members))
        assert meeting.member(PHONES[1]).muted  # type: ignore[union-attr]
        assert all(member.speaking is not None for member in meeting.members)
        client.mute_all(meid)
        assert [m.muted for m in client.query_meeting(meid).members] == [False, True, True]
        client.unmute_all(meid)
        client.hold_member(meid, PHONES[2])
        assert [m.held for m in client.query_meeting(meid).members] == [False, False, True]
        client.unhold_member(meid, PHONES[2])
        assert not any(m.held for m in client.query_meeting(meid).members)
        with pytest.raises(MeetingError) as refused:
            client.hold_member(meid, "13900000000")
        assert refused.value.status_code == "-304"
        client.play_prompt(meid, text="welcome", phone=PHONES[1], loop=True)
        assert client.stop_prompt(meid, phone=PHONES[1]).request_id
        assert client.stop_prompt(meid).request_id
        with pytest.raises(MeetingError) as refused:
            client.stop_prompt(meid, phone="13900000000")
        assert refused.value.status_code == "-304"
        with pytest.raises(ValueError):
            client.play_prompt(meid)
        with pytest.raises(ValidationError):
            client.start_recording(meid)  # already recording: -101
        time.sleep(2.5)
        client.stop_recording(meid)
        meeting = _wait(client, meid, lambda m: bool(m.recordings) and m.recordings[0].ready)
        (recording,) = meeting.recordings
        assert recording.start is not None and recording.end is not None
        assert recording.seconds >= 2
        assert httpx.get(recording.url, timeout=10).status_code == 200
        talkers = [
            typed
            for event in client.iter_meeting_events(meid)
            for typed in event.events
            if isinstance(typed, MeetingStateChange) and typed.state == "speakers"
        ]
        assert talkers and all(set(t.speakers) <= set(PHONES) for t in talkers)
        client.destroy_meeting(meid)


def test_async_client_records(served: tuple[Server, Tenant]) -> None:
    server, tenant = served

    async def run() -> None:
        async with AsyncClient(
            tenant.sid, tenant.token, tenant.sandbox_app, base_url=server.sandbox_url
        ) as client:
            meid = (await client.create_meeting(parties=[PHONES[0]])).meid
            await client.start_recording(meid)
            await client.mute_all(meid)
            await client.unmute_all(meid)
            assert (await client.stop_prompt(meid)).request_id
            await asyncio.sleep(1.0)
            await client.stop_recording(meid)
            await client.destroy_meeting(meid)

    asyncio.run(run())


def test_client_cli_commands(served: tuple[Server, Tenant]) -> None:
    from typer.testing import CliRunner

    from telemeeting.cli import cli as telemeeting

    server, tenant = served
    common = [
        "--account-sid", tenant.sid, "--auth-token", tenant.token,
        "--app-id", tenant.sandbox_app, "--base-url", server.sandbox_url, "--json",
    ]  # fmt: skip

    def cli(*args: str) -> dict[str, Any]:
        outcome = CliRunner().invoke(telemeeting, ["client", *args, *common])
        assert outcome.exit_code == 0, outcome.output
        return dict(json.loads(outcome.stdout))

    meid = cli(
        "create-meeting", "cli", "--party", PHONES[0], "--muted-party", PHONES[1],
        "--record", "--beep", "0", "--speaker-events",
    )["meid"]  # fmt: skip
    deadline = time.monotonic() + 20
    meeting = cli("query", meid)
    while any(m["state"] != "answer" for m in meeting["members"]) and time.monotonic() < deadline:
        time.sleep(0.1)
        meeting = cli("query", meid)
    assert [m["muted"] for m in meeting["members"]] == [False, True]
    assert all("speaking" in m for m in meeting["members"])
    for command in ("mute-all", "unmute-all", "stop-recording", "record"):
        assert cli(command, meid)["requestId"]
    assert cli("prompt", meid, "--text", "hello")["requestId"]
    assert cli("hold", meid, PHONES[0])["requestId"]
    assert [m["held"] for m in cli("query", meid)["members"]] == [True, False]
    assert cli("unhold", meid, PHONES[0])["requestId"]
    assert cli("stop-prompt", meid)["requestId"]
    assert cli("stop-prompt", meid, "--phone", PHONES[1])["requestId"]
