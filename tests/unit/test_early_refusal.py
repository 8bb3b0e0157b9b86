"""Under overload the HTTP protocol refuses an action request before the layers above the app
run (api/connections.py `_start_asgi_task`): the answer is admission control's -104, the layers
never see the request, the connection stays usable, and pipelined requests keep their order."""

from __future__ import annotations

import asyncio
from typing import Any

from telemeeting.api.admission import AdmissionControl
from telemeeting.api.app import is_api_request
from tests.unit.inprocess_http import read_until, serving

API_PATH = "/201612/sid/0123456789abcdef0123456789abcdef/call/TeleMeeting.wx"
REFUSAL = '{"statusCode":"-104","statusMsg":"服务器繁忙，请稍后重试","requestId":""}'.encode()


def _request(path: str = API_PATH, body: bytes = b"{}") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def _exchange(
    requests: list[bytes], full: bool
) -> tuple[list[bytes], list[str], AdmissionControl]:
    seen: list[str] = []

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"statusCode":"0"}'})

    admission = AdmissionControl(inner, 1, is_api_request)

    async def layers(scope: dict[str, Any], receive: Any, send: Any) -> None:
        """What sits above admission control in `serve` (the edge, the per-address limit)."""
        if scope["type"] == "http":
            seen.append(scope["path"])
        await admission(scope, receive, send)

    if full:
        admission.in_flight = 1  # another request holds the one place
    answers: list[bytes] = []
    async with serving(layers, [], admission) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"".join(requests))  # pipelined: all in one write
        for _ in requests:
            answers.append(await read_until(reader, b"}"))
        writer.close()
    return answers, seen, admission


def test_a_refused_request_never_reaches_the_layers_above_the_app() -> None:
    answers, seen, admission = asyncio.run(_exchange([_request(), _request()], full=True))
    assert [answer.endswith(REFUSAL) for answer in answers] == [True, True]
    assert seen == []
    assert admission.refused == 2


def test_paths_that_are_not_actions_are_never_refused_early() -> None:
    answers, seen, admission = asyncio.run(_exchange([_request("/healthz")], full=True))
    assert answers[0].endswith(b'{"statusCode":"0"}')
    assert seen == ["/healthz"]
    assert admission.refused == 0


def test_with_room_requests_go_through_the_layers_in_order() -> None:
    answers, seen, admission = asyncio.run(
        _exchange([_request(body=b'{"a":1}'), _request("/other")], full=False)
    )
    assert [answer.endswith(b'{"statusCode":"0"}') for answer in answers] == [True, True]
    assert seen == [API_PATH, "/other"]
    assert admission.refused == 0
