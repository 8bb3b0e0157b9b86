"""The operator CLI of design.md, run as a real command against real databases."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.servers import cli_json, free_port, run_cli


def test_the_installed_command_runs(sqlite_db: str) -> None:
    """Everything else goes through click's runner in-process; this is the real executable."""
    result = run_cli("account", "create", "--json", db=sqlite_db, in_process=False)
    assert result.returncode == 0 and json.loads(result.stdout)["enabled"] is True
    bad = run_cli("account", "disable", "0" * 32, db=sqlite_db, in_process=False, check=False)
    assert bad.returncode == 1 and "no account" in bad.stderr and "Traceback" not in bad.stderr


def test_account_create_json_has_every_field(sqlite_db: str) -> None:
    account = cli_json(
        "account", "create", "--sid", "a" * 32, "--token", "b" * 32, "--name", "客户", db=sqlite_db
    )
    assert account["sid"] == "a" * 32 and account["auth_token"] == "b" * 32
    assert account["name"] == "客户" and account["enabled"] is True
    assert set(account) == {
        "sid",
        "auth_token",
        "name",
        "enabled",
        "balance",
        "created_at",
        "price_per_unit",
        "credit_limit",
    }
    generated = cli_json("account", "create", db=sqlite_db)
    assert re.fullmatch(r"[0-9a-f]{32}", generated["sid"])
    assert re.fullmatch(r"[0-9a-f]{32}", generated["auth_token"])


def test_operator_mistakes_get_clear_errors(sqlite_db: str) -> None:
    run_cli("account", "create", "--sid", "c" * 32, db=sqlite_db)
    duplicate = run_cli("account", "create", "--sid", "c" * 32, db=sqlite_db, check=False)
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    unknown = run_cli("account", "disable", "d" * 32, db=sqlite_db, check=False)
    assert unknown.returncode == 1 and "no account" in unknown.stderr
    no_owner = run_cli(
        "app", "create", "--account", "e" * 32, "--env", "sandbox", db=sqlite_db, check=False
    )
    assert no_owner.returncode == 1 and "no account" in no_owner.stderr
    bad_env = run_cli(
        "app", "create", "--account", "c" * 32, "--env", "staging", db=sqlite_db, check=False
    )
    assert bad_env.returncode == 2
    bad_list = run_cli(
        "app",
        "create",
        "--account",
        "c" * 32,
        "--env",
        "production",
        "--ip-whitelist",
        "10.0.0.1,not-an-ip",
        db=sqlite_db,
        check=False,
    )
    assert bad_list.returncode == 1 and "not-an-ip" in bad_list.stderr
    bad_url = run_cli(
        "app",
        "create",
        "--account",
        "c" * 32,
        "--env",
        "production",
        "--callback-url",
        "ftp://x",
        db=sqlite_db,
        check=False,
    )
    assert bad_url.returncode == 1 and "http" in bad_url.stderr
    broken_url = run_cli(
        "app",
        "create",
        "--account",
        "c" * 32,
        "--env",
        "production",
        "--callback-url",
        "https://[::1/cb",
        db=sqlite_db,
        check=False,
    )
    assert broken_url.returncode == 1 and "not a valid callback URL" in broken_url.stderr
    for result in (duplicate, unknown, no_owner, bad_list, bad_url, broken_url):
        assert "Traceback" not in result.stderr


def test_app_create_and_update(fresh_db: str) -> None:
    account = cli_json("account", "create", db=fresh_db)
    app = cli_json(
        "app",
        "create",
        "--account",
        account["sid"],
        "--env",
        "production",
        "--appid",
        "f" * 32,
        "--callback-url",
        "http://127.0.0.1:9/cb",
        "--ip-whitelist",
        "10.0.0.0/8",
        "--offline",
        db=fresh_db,
    )
    assert app["appid"] == "f" * 32 and app["env"] == "production"
    assert app["online"] is False and app["ip_whitelist"] == "10.0.0.0/8"
    updated = cli_json(
        "app",
        "update",
        app["appid"],
        "--online",
        "--ip-whitelist",
        "",
        "--callback-url",
        "https://example.invalid/cb",
        db=fresh_db,
    )
    assert updated["online"] is True and updated["ip_whitelist"] == ""
    assert updated["callback_url"] == "https://example.invalid/cb"
    missing = run_cli("app", "update", "0" * 32, "--online", db=fresh_db, check=False)
    assert missing.returncode == 1 and "no app" in missing.stderr


def test_config_file_and_missing_file(sqlite_db: str, tmp_path: Path) -> None:
    missing = run_cli(
        "account", "create", "--config", str(tmp_path / "nope.toml"), db=sqlite_db, check=False
    )
    assert missing.returncode == 2 and "config file not found" in missing.stderr


def test_first_start_prints_working_demo_credentials(sqlite_db: str, tmp_path: Path) -> None:
    port, sandbox_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    command = [
        sys.executable,
        "-m",
        "telemeeting",
        "serve",
        "--db",
        sqlite_db,
        "--port",
        str(port),
        "--sandbox-port",
        str(sandbox_port),
    ]

    def serve() -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

    process = serve()
    try:
        deadline = time.monotonic() + 60
        while "serving production" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        banner = log.read_text()
        assert "ACCOUNT SID" in banner and "AUTH TOKEN" in banner
        curl = banner[banner.index("curl") : banner.index("telemeeting serving")]
        curl = curl.replace("curl -s", "curl -s --max-time 10", 1)
        result = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30)
        answer = json.loads(result.stdout)
        assert answer["statusCode"] == "0" and answer["meid"], answer
    finally:
        process.terminate()
        process.wait(timeout=15)
    log.write_text("")
    process = serve()  # second start on the same database: no new demo account
    try:
        deadline = time.monotonic() + 60
        while "serving production" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "serving production" in log.read_text()
        assert "ACCOUNT SID" not in log.read_text()
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 404
    finally:
        process.terminate()
        process.wait(timeout=15)
