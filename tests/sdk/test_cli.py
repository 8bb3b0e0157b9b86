"""`telemeeting client …` and `telemeeting demo` against a running server.

Mounted here exactly as the top-level CLI mounts them, through typer's CliRunner; one test runs
the real command in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import typer
from typer.testing import CliRunner, Result

from telemeeting.client import Client
from telemeeting.client.cli import client_cli, demo
from tests.servers import Server, Tenant, free_port

NORMAL, OTHER = "13800138000", "13900139000"

app = typer.Typer()
app.add_typer(client_cli, name="client")
app.command()(demo)
runner = CliRunner()


def credentials(server: Server, tenant: Tenant) -> dict[str, str]:
    return {
        "TELEMEETING_ACCOUNT_SID": tenant.sid,
        "TELEMEETING_AUTH_TOKEN": tenant.token,
        "TELEMEETING_APP_ID": tenant.sandbox_app,
        "TELEMEETING_BASE_URL": server.sandbox_url,
        "COLUMNS": "200",
    }


def run(server: Server, tenant: Tenant, *args: str) -> Result:
    return runner.invoke(app, list(args), env=credentials(server, tenant))


def test_client_commands_json(server: Server, tenant: Tenant) -> None:
    created = run(
        server, tenant, "client", "create-meeting", "周会", "--json", "--max-members", "9"
    )
    assert created.exit_code == 0, created.output
    meid = json.loads(created.stdout)["meid"]

    invited = run(
        server, tenant, "client", "invite", meid, f"张三={NORMAL}", "01053889900,1234", "--json"
    )
    assert invited.exit_code == 0, invited.output
    request_id = json.loads(invited.stdout)["requestId"]

    with Client(tenant.sid, tenant.token, tenant.sandbox_app, server.sandbox_url) as sdk:
        deadline = time.monotonic() + 10  # a deadline, not a count of polls: a busy CI
        while time.monotonic() < deadline:  # machine answers a poll in a fraction of the ring
            queried_now = sdk.query_meeting(meid)
            if queried_now.settled and queried_now.members:
                break
            time.sleep(0.05)
    queried = run(server, tenant, "client", "query", meid, "--json")
    meeting = json.loads(queried.stdout)
    assert (meeting["meid"], meeting["meetingname"], meeting["maxmembers"]) == (meid, "周会", 9)
    assert [(m["name"], m["phone"], m["state"]) for m in meeting["members"]] == [
        ("张三", NORMAL, "answer"),
        ("", "01053889900,1234", "answer"),
    ]
    assert meeting["members"][0]["requestid"] == request_id

    for command in ("mute", "unmute", "kick"):
        result = run(server, tenant, "client", command, meid, NORMAL, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["requestId"]

    events = json.loads(run(server, tenant, "client", "events", meid, "--json").stdout)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert {e["type"] for e in events} == {"MeetingState", "CallState", "Call"}
    limited = json.loads(
        run(
            server, tenant, "client", "events", meid, "--after", "1", "--limit", "2", "--json"
        ).stdout
    )
    assert [e["seq"] for e in limited] == [2, 3]

    destroyed = run(server, tenant, "client", "destroy", meid, "--json")
    assert destroyed.exit_code == 0, destroyed.output


def test_client_commands_human_output(server: Server, tenant: Tenant) -> None:
    created = run(server, tenant, "client", "create-meeting", "--party", f"李四={OTHER}")
    assert created.exit_code == 0 and "meeting created" in created.stdout
    meid = created.stdout.split("meid")[1].split()[0]
    invited = run(server, tenant, "client", "invite", meid, NORMAL)
    assert "requestId" in invited.stdout
    queried = run(server, tenant, "client", "query", meid)
    assert queried.exit_code == 0
    for text in (meid, "李四", OTHER, NORMAL, "members", "state"):
        assert text in queried.stdout
    events = run(server, tenant, "client", "events", meid)
    assert "MeetingState" in events.stdout and "callout" in events.stdout
    assert "ended" in run(server, tenant, "client", "destroy", meid).stdout


@pytest.mark.parametrize(
    ("args", "code", "family"),
    [
        (("query", "no-such-meeting"), "-300", "MeetingError"),
        (("invite", "no-such-meeting", "150****0804"), "-102", "ValidationError"),
        (("query", "x", "--auth-token", "wrong"), "-203", "AuthError"),
        (("query", "x", "--app-id", "unknown-app"), "-205", "AuthError"),
    ],
)
def test_client_errors_exit_1_with_the_status_code(
    server: Server, tenant: Tenant, args: tuple[str, ...], code: str, family: str
) -> None:
    result = run(server, tenant, "client", *args)
    assert result.exit_code == 1
    assert f"error {code}" in result.stderr and family in result.stderr
    as_json = run(server, tenant, "client", *args, "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["statusCode"] == code


def test_client_unreachable_and_missing_credentials(server: Server, tenant: Tenant) -> None:
    down = run(
        server, tenant, "client", "query", "1", "--base-url", f"http://127.0.0.1:{free_port()}"
    )
    assert down.exit_code == 1 and "cannot talk to" in down.stderr
    result = runner.invoke(
        app, ["client", "query", "1"], env={"TELEMEETING_APP_ID": "", "TELEMEETING_AUTH_TOKEN": ""}
    )
    assert result.exit_code == 2
    assert "--auth-token" in result.stderr and "TELEMEETING_APP_ID" in result.stderr


def test_client_in_a_subprocess(server: Server, tenant: Tenant) -> None:
    """`python -m telemeeting client` once the top-level CLI mounts it; the module until then."""
    mounted = subprocess.run(
        [sys.executable, "-m", "telemeeting", "client", "--help"], capture_output=True, timeout=60
    )
    entry = ["telemeeting", "client"] if mounted.returncode == 0 else ["telemeeting.client"]
    env = {**os.environ, **credentials(server, tenant)}
    created = subprocess.run(
        [sys.executable, "-m", *entry, "create-meeting", "sub", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert created.returncode == 0, created.stderr
    meid = json.loads(created.stdout)["meid"]
    failed = subprocess.run(
        [sys.executable, "-m", *entry, "kick", meid, NORMAL],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert failed.returncode == 1
    assert "error -304" in failed.stderr and "成员不存在" in failed.stderr


# ---- the demo ----------


def test_demo_shows_the_meeting_come_alive(server: Server, tenant: Tenant) -> None:
    result = runner.invoke(
        app,
        ["demo", "--seconds", "15", "--poll", "0.1"],
        env=credentials(server, tenant),
    )
    out = result.stdout
    assert result.exit_code == 0, result.output
    assert "every call settled" in out  # ended early, well before 15 s
    for text in ("张三", "李四", "王五", "赵六", "前台"):
        assert text in out
    for phone in ("13800138000", "13800000486", "13800000408", "13800000603", "01053889900,1234"):
        assert phone in out
    final = out.split("final states")[1].split("event history")[0]
    rows = {line.split("│")[2].strip(): line for line in final.splitlines() if "│" in line}
    assert "未应答|用户忙" in rows["13800000486"]
    assert "未应答|无应答" in rows["13800000408"]
    assert "未应答|拒接" in rows["13800000603"]
    assert "应答|会议结束" in rows["13800138000"]
    assert "应答|会议结束" in rows["01053889900,1234"]
    history = out.split("event history")[1]
    assert "meeting start" in history and "meeting end" in history and "CDR" in history
    assert "2 of 5 parties answered" in out
    # Issue 14: the demo records and has speaker events; it ends with both.
    media = out.split("event history")[1]
    assert "speaker changes:" in media
    changes = media.split("speaker changes:")[1].split("recording")[0]
    talkers = {p.rstrip(",") for line in changes.splitlines()[1:] for p in line.split()[1:]}
    assert talkers <= {"13800138000", "01053889900,1234", "(silence)"}
    assert talkers - {"(silence)"}, changes  # somebody was heard (a subset of nothing proves none)
    assert "/recordings/" in media and ".mp3?expires=" in media


def test_demo_is_bounded_in_time(server: Server, tenant: Tenant) -> None:
    result = runner.invoke(app, ["demo", "--seconds", "0.5"], env=credentials(server, tenant))
    assert result.exit_code == 0, result.output
    assert "0.5 s are up" in result.stdout
    assert "未应答|会议结束" in result.stdout  # the one still ringing was cancelled


def test_demo_without_credentials_says_what_to_pass() -> None:
    result = runner.invoke(
        app,
        ["demo"],
        env={"TELEMEETING_ACCOUNT_SID": "", "TELEMEETING_AUTH_TOKEN": "", "COLUMNS": "200"},
    )
    assert result.exit_code == 2
    assert "telemeeting serve" in result.stderr and "--account-sid" in result.stderr


def test_client_balance_and_cdrs(server: Server) -> None:
    tenant = server.new_tenant(balance=3)
    meid = json.loads(run(server, tenant, "client", "create-meeting", "--json").stdout)["meid"]
    invited = run(server, tenant, "client", "invite", meid, "13800000486", "--json")
    request_id = json.loads(invited.stdout)["requestId"]

    balance = run(server, tenant, "client", "balance", "--json")
    assert balance.exit_code == 0, balance.output
    assert json.loads(balance.stdout)["Blance"] == 3.0
    assert "3.00" in run(server, tenant, "client", "balance").stdout

    for _ in range(100):
        pulled = run(server, tenant, "client", "cdrs", "--request", request_id, "--json")
        if json.loads(pulled.stdout):
            break
    [cdr] = json.loads(pulled.stdout)
    assert (cdr["called"], cdr["stateDesc"]) == ("13800000486", "未应答|用户忙")
    listed = run(server, tenant, "client", "cdrs")
    assert listed.exit_code == 0 and request_id in listed.stdout and "1 CDR(s)" in listed.stdout
    after = run(
        server, tenant, "client", "cdrs", "--after", request_id, "--after-called", "13800000486"
    )
    assert "0 CDR(s)" in after.stdout
    by_hour = run(server, tenant, "client", "cdrs", "--date", "2026-11-28", "--hour", "3")
    assert by_hour.exit_code == 0 and "0 CDR(s)" in by_hour.stdout
    half = run(server, tenant, "client", "cdrs", "--date", "2026-11-28")
    assert half.exit_code == 2
    unknown = run(server, tenant, "client", "cdrs", "--after", "123", "--json")
    assert unknown.exit_code == 1 and json.loads(unknown.stdout)["statusCode"] == "-101"
