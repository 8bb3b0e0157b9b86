"""An unexpected failure answers -100 with a logged id, never a stack trace (spec §3, §4).

The platform is real (SQLite, the simulated carrier); only the use case is replaced by one that
fails, since no valid request can make the real one fail on purpose.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from telemeeting.api.app import create_app
from telemeeting.bootstrap import build_platform
from telemeeting.config import load_settings
from telemeeting.service import admin
from telemeeting.wire.auth import signed_headers


async def test_unexpected_error_is_100_with_logged_request_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(database={"url": f"sqlite+aiosqlite:///{tmp_path / 'tm.db'}"})
    platform = build_platform(settings)
    await platform.start()
    try:
        account = await admin.create_account(platform.db)
        app = await admin.create_app(platform.db, account_sid=account.sid, env="production")

        async def broken(*_: Any) -> None:
            raise RuntimeError("disk on fire at /secret/path")

        monkeypatch.setattr(platform.service, "invite", broken)
        transport = httpx.ASGITransport(app=create_app(platform), client=("127.0.0.1", 1234))
        headers, sign = signed_headers(
            account.sid, account.auth_token, datetime.now(UTC), settings.zone
        )
        body = {
            "action": "inviteJoinMeeting",
            "appid": app.appid,
            "confid": "1",
            "parties": [{"phone": "13800138000"}],
        }
        with structlog.testing.capture_logs() as logs:
            async with httpx.AsyncClient(
                transport=transport, base_url="http://127.0.0.1:8880"
            ) as c:
                response = await c.post(
                    f"/201612/sid/{account.sid}/call/TeleMeeting.wx?Sign={sign}",
                    content=json.dumps(body),
                    headers=headers,
                )
    finally:
        await platform.stop()
    assert response.status_code == 200
    answer = response.json()
    assert (answer["statusCode"], answer["statusMsg"]) == ("-100", "异常错误")
    assert re.fullmatch(r"\d{29}", answer["requestId"])
    assert "secret" not in response.text and "Traceback" not in response.text
    logged = [e for e in logs if e["event"] == "api.internal_error"]
    assert logged and logged[0]["request_id"] == answer["requestId"]
