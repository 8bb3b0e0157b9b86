"""Admission control: beyond `max_in_flight` API requests, -104 (overloaded) at once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import structlog

from telemeeting.api.admission import LOG_INTERVAL_SECONDS, AdmissionControl
from telemeeting.api.app import is_api_request
from telemeeting.wire.envelope import CONTENT_TYPE

API_PATH = "/201612/sid/abc/call/TeleMeeting.wx"


class BlockingApp:
    """A fake app whose requests stay in flight until released; records the lifespan too."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0
        self.scopes: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scopes.append(scope["type"])
        if scope["type"] != "http":
            return
        self.entered += 1
        if scope["path"] == "/fail":
            raise RuntimeError("boom")
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})


def http(path: str = API_PATH, method: str = "POST") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "headers": []}


async def call(app: AdmissionControl, scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_beyond_the_bound_the_answer_is_104_overloaded_at_once() -> None:
    inner = BlockingApp()
    app = AdmissionControl(inner, 2, is_api_request)
    held = [asyncio.create_task(call(app, http())) for _ in range(2)]
    await settle()
    assert (inner.entered, app.in_flight) == (2, 2)

    start, body = await asyncio.wait_for(call(app, http()), 1)  # not queued: answered now
    assert start["status"] == 200
    assert dict(start["headers"])[b"content-type"] == CONTENT_TYPE.encode()
    assert int(dict(start["headers"])[b"content-length"]) == len(body["body"])
    overloaded = '{"statusCode":"-104","statusMsg":"服务器繁忙，请稍后重试","requestId":""}'
    assert body["body"] == overloaded.encode()
    assert list(json.loads(body["body"])) == ["statusCode", "statusMsg", "requestId"]
    assert (inner.entered, app.refused) == (2, 1)

    inner.release.set()
    for done in await asyncio.gather(*held):
        assert done[-1]["body"] == b"done"
    assert app.in_flight == 0
    assert (await call(app, http()))[-1]["body"] == b"done"  # admitted again


@pytest.mark.parametrize(
    "scope",
    [
        http("/healthz", "GET"),
        http("/", "GET"),
        http(API_PATH, "GET"),  # answered 405 by the app, cheaply
        http("/201611/sid/abc/call/TeleMeeting.wx", "POST"),  # answered 404
    ],
)
async def test_only_action_requests_count(scope: dict[str, Any]) -> None:
    inner = BlockingApp()
    app = AdmissionControl(inner, 1, is_api_request)
    held = asyncio.create_task(call(app, http()))
    await settle()
    passed = asyncio.create_task(call(app, scope))
    await settle()
    assert inner.entered == 2 and app.refused == 0
    inner.release.set()
    await asyncio.gather(held, passed)


async def test_lifespan_passes_through() -> None:
    inner = BlockingApp()
    app = AdmissionControl(inner, 1, is_api_request)
    await call(app, {"type": "lifespan"})
    assert inner.scopes == ["lifespan"]


async def test_a_failing_request_frees_its_place() -> None:
    inner = BlockingApp()
    app = AdmissionControl(inner, 1, lambda scope: True)
    with pytest.raises(RuntimeError):
        await call(app, http("/fail"))
    assert app.in_flight == 0
    inner.release.set()
    assert (await call(app, http()))[-1]["body"] == b"done"


async def test_zero_is_no_bound() -> None:
    inner = BlockingApp()
    app = AdmissionControl(inner, 0, is_api_request)
    held = [asyncio.create_task(call(app, http())) for _ in range(100)]
    await settle()
    assert inner.entered == 100 and app.refused == 0
    inner.release.set()
    await asyncio.gather(*held)


async def test_refusals_are_logged_at_most_once_per_interval() -> None:
    now = [0.0]
    inner = BlockingApp()
    app = AdmissionControl(inner, 1, is_api_request, clock=lambda: now[0])
    held = asyncio.create_task(call(app, http()))
    await settle()
    with structlog.testing.capture_logs() as logs:
        for _ in range(50):
            await call(app, http())
        now[0] += LOG_INTERVAL_SECONDS
        await call(app, http())
    lines = [entry for entry in logs if entry["event"] == "api.overloaded"]
    assert [line["refused"] for line in lines] == [1, 50]
    inner.release.set()
    await held
