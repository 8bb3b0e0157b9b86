"""The HTTP stack under `telemeeting serve`, seen from a client: keep-alive latency, admission
control, the liveness check."""

from __future__ import annotations

import json
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from telemeeting.wire.auth import make_authorization, make_sign
from tests.servers import Api, Server, now_timestamp, start_server


@pytest.fixture(params=["asyncio", "auto"])
def own_server(request: pytest.FixtureRequest, sqlite_db: str, tmp_path: Path) -> Iterator[Server]:
    """`[server] loop`: uvloop ("auto") sets TCP_NODELAY itself, the standard loop does not."""
    server = start_server(sqlite_db, tmp_path, env={"TELEMEETING_SERVER_LOOP": request.param})
    try:
        yield server
    finally:
        server.stop()


def _signed(api: Api) -> tuple[str, dict[str, str]]:
    timestamp = now_timestamp()
    sid = api.tenant.sid
    sign = make_sign(sid, api.tenant.token, timestamp)
    url = f"{api.server.sandbox_url}/201612/sid/{sid}/call/MeetingQuery.wx?Sign={sign}"
    headers = {
        "Authorization": make_authorization(sid, timestamp),
        "Content-Type": "application/json;charset=utf-8;",
    }
    return url, headers


def test_keep_alive_responses_do_not_wait_for_the_delayed_ack(own_server: Server) -> None:
    """Without TCP_NODELAY on accepted connections, the body of every response on a reused
    connection waits for the client's delayed ACK (~40 ms on Linux): what SDKs and
    `requests.Session` see. Answered promptly, a query takes a few milliseconds."""
    api = Api(own_server, own_server.new_tenant())
    meid = api.create_meeting()
    url, headers = _signed(api)
    body = json.dumps({"action": "queryMeeting", "appid": api.tenant.sandbox_app, "confid": meid})
    timings: list[float] = []
    peers: set[object] = set()
    with httpx.Client(timeout=10) as client:
        for _ in range(23):
            started = time.perf_counter()
            response = client.post(url, content=body, headers=headers)
            timings.append(time.perf_counter() - started)
            assert response.json()["statusCode"] == "0", response.text
            peers.add(response.extensions["network_stream"].get_extra_info("client_addr"))
    assert len(peers) == 1  # one keep-alive connection throughout
    median = statistics.median(timings[3:])  # the first requests warm caches up
    assert median < 0.025, f"median {median * 1000:.1f} ms: {[round(t * 1000) for t in timings]}"


def test_beyond_max_in_flight_requests_get_104_overloaded_at_once(
    sqlite_db: str, tmp_path: Path
) -> None:
    """One request in flight (its body not yet sent) fills `max_in_flight = 1`: the next is
    refused at once with -104 and its own message; when the first completes, requests are
    taken again."""
    server = start_server(sqlite_db, tmp_path, env={"TELEMEETING_SERVER_MAX_IN_FLIGHT": "1"})
    try:
        api = Api(server, server.new_tenant())
        url, headers = _signed(api)
        body = json.dumps(
            {"action": "queryMeeting", "appid": api.tenant.sandbox_app, "confid": "none"}
        ).encode()
        target = url.removeprefix(server.sandbox_url)
        head = f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        head += "Connection: close\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
        with socket.create_connection(("127.0.0.1", server.sandbox_port), timeout=10) as slow:
            slow.sendall(head.encode() + body[:5])  # in flight, waiting for the rest of its body
            time.sleep(0.5)
            started = time.perf_counter()
            refused = httpx.post(url, content=body, headers=headers, timeout=10)
            elapsed = time.perf_counter() - started
            assert refused.status_code == 200
            assert refused.content == (
                '{"statusCode":"-104","statusMsg":"服务器繁忙，请稍后重试","requestId":""}'.encode()
            )
            assert elapsed < 1.0
            health = httpx.get(f"{server.sandbox_url}/healthz", timeout=10)
            assert (health.status_code, health.json()) == (200, {"status": "ok"})  # not counted
            slow.sendall(body[5:])
            answer = b""
            while chunk := slow.recv(65536):  # Connection: close
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 ") and b'"statusCode":"-300"' in answer
        taken = httpx.post(url, content=body, headers=headers, timeout=10)
        assert taken.json()["statusCode"] == "-300"
        assert "api.overloaded" in server.log()
    finally:
        server.stop()


def test_healthz_says_the_process_is_alive(server: Server) -> None:
    for base in (server.production_url, server.sandbox_url):
        alive = httpx.get(f"{base}/healthz", timeout=10)
        assert (alive.status_code, alive.content) == (200, b'{"status":"ok"}')
        assert alive.headers["content-type"] == "application/json"
        assert httpx.head(f"{base}/healthz", timeout=10).status_code == 200
    posted = httpx.post(f"{server.sandbox_url}/healthz", timeout=10)  # not an API path
    assert (posted.status_code, posted.json()["statusCode"]) == (404, "-3")
