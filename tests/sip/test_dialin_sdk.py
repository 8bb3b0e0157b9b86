"""Dial-in in the API, the SDK and the client CLI (issue 15), against a real server with two
dial-in numbers (one bound to meeting 777): createMeeting `dialin`/`pin` (validated whole),
its answer's `pin` and `dialinnumbers`, the same answer on an idempotent repeat, queryMeeting's
`pin`, `dialinnumbers` and members' `direction`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from telemeeting.client import AsyncClient, Client, ValidationError
from telemeeting.client.cli import client_cli
from tests.servers import Server, Tenant, start_server
from tests.sip.peers import free_ports

pytestmark = pytest.mark.timeout(120)

app = typer.Typer()
app.add_typer(client_cli, name="client")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Server, Tenant]]:
    (sip,) = free_ports(1)
    (rtp,) = free_ports(1, span=20)
    env = {
        "TELEMEETING_RECORDINGS_DIRECTORY": str(tmp_path / "recordings"),
        "TELEMEETING_SIP_LOCAL_PORT": str(sip),
        "TELEMEETING_SIP_RTP_PORT_MIN": str(rtp),
        "TELEMEETING_SIP_RTP_PORT_MAX": str(rtp + 19),
        "TELEMEETING_SIP_TRUSTED_SOURCES": '["127.0.0.1"]',
        "TELEMEETING_SIP_DIALIN": '[{"number": "4000"}, {"number": "4001", "meid": "777"}]',
    }
    server = start_server(f"sqlite+aiosqlite:///{tmp_path / 'tm.db'}", tmp_path, env)
    try:
        yield server, server.new_tenant()
    finally:
        server.stop()


def test_dialin_meetings_in_the_sdk_and_cli(served: tuple[Server, Tenant]) -> None:
    server, tenant = served
    with Client(tenant.sid, tenant.token, tenant.sandbox_app, server.sandbox_url) as sdk:
        plain = sdk.create_meeting("plain", parties=["13800000001"])
        assert (plain.pin, plain.dialin_numbers) == ("", ())
        made_up = sdk.create_meeting("made up", dialin=True)
        assert len(made_up.pin) == 6 and made_up.pin.isdigit()
        assert made_up.dialin_numbers == ("4000",)
        bound = sdk.create_meeting(
            "bound", confid="777", dialin=True, pin="1234", parties=["13800000002"],
            idempotency_key="dialin-once",
        )  # fmt: skip
        assert (bound.meid, bound.pin, bound.dialin_numbers) == ("777", "1234", ("4000", "4001"))
        again = sdk.create_meeting(
            "bound", confid="777", dialin=True, pin="1234", parties=["13800000002"],
            idempotency_key="dialin-once",
        )  # fmt: skip
        assert (again.meid, again.pin, again.dialin_numbers) == ("777", "1234", ("4000", "4001"))
        for bad in ({"pin": "12"}, {"pin": "123456789"}, {"pin": "12a4"}):
            with pytest.raises(ValidationError):
                sdk.create_meeting("bad", dialin=True, **bad)
        with pytest.raises(ValidationError):  # a PIN needs dialin
            sdk.create_meeting("bad", dialin=False, pin="1234")
        meeting = sdk.query_meeting("777")
        assert (meeting.pin, meeting.dialin_numbers) == ("1234", ("4000", "4001"))
        assert [m.direction for m in meeting.members] == ["out"]
        assert meeting.raw["members"][0]["direction"] == "out"
        assert "pin" not in sdk.query_meeting(plain.meid).raw  # only dial-in meetings show it

    async def with_async() -> None:
        async with AsyncClient(
            tenant.sid, tenant.token, tenant.sandbox_app, server.sandbox_url
        ) as client:
            created = await client.create_meeting("async", dialin=True, pin="87654321")
            assert (created.pin, created.dialin_numbers) == ("87654321", ("4000",))
            queried = await client.query_meeting(created.meid)
            assert queried.pin == "87654321"

    asyncio.run(with_async())

    env = {
        "TELEMEETING_ACCOUNT_SID": tenant.sid,
        "TELEMEETING_AUTH_TOKEN": tenant.token,
        "TELEMEETING_APP_ID": tenant.sandbox_app,
        "TELEMEETING_BASE_URL": server.sandbox_url,
        "COLUMNS": "200",
    }
    runner = CliRunner()
    made = runner.invoke(
        app, ["client", "create-meeting", "cli", "--pin", "4321", "--json"], env=env
    )
    assert made.exit_code == 0, made.output
    answer = json.loads(made.stdout)
    assert (answer["pin"], answer["dialinnumbers"]) == ("4321", ["4000"])
    human = runner.invoke(app, ["client", "create-meeting", "cli", "--dialin"], env=env)
    assert human.exit_code == 0 and "dial in: call 4000, key" in human.output, human.output
    shown = runner.invoke(app, ["client", "query", answer["meid"]], env=env)
    assert shown.exit_code == 0 and "dial in: 4000  PIN 4321" in shown.output, shown.output
