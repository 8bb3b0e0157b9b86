"""What the HTTP layer answers before and around the API (issue 11, items 3 and 4): unknown
methods and non-origin-form request targets get the envelope, a client gone mid-request is one
info line, and floods of unauthenticated requests from one address get -104 after a burst.
Every test talks to a real `telemeeting serve` over loopback with raw sockets."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.raw_http import (
    connect,
    exchange,
    query_body,
    read_answer,
    signed_head,
    status_and_envelope,
    wait_all_closed,
)
from tests.servers import Api, Server, database_url, start_server


@pytest.fixture(scope="module")
def edge_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("edge")
    server = start_server(
        database_url("sqlite", tmp),
        tmp,
        env={"TELEMEETING_SERVER_BODY_TIMEOUT_SECONDS": "1.5"},
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def edge_api(edge_server: Server) -> Api:
    return Api(edge_server, edge_server.new_tenant())


API_PATH = "/201612/sid/0123456789abcdef0123456789abcdef/call/TeleMeeting.wx?Sign=x"

#: Methods no route serves: unknown to the HTTP parser (FOO, BREW, lower-case get) or known to it
#: but not ours (PROPFIND, SOURCE, M-SEARCH). PRI is the start of the HTTP/2 preface to
#: httptools, which refuses it as malformed HTTP/1.1 (see the plain 400 test below).
UNKNOWN_METHODS = ["FOO", "BREW", "get", "PROPFIND", "SOURCE", "M-SEARCH"]


@pytest.mark.parametrize("method", UNKNOWN_METHODS)
@pytest.mark.parametrize("path", ["/", API_PATH])
def test_an_unknown_method_gets_405_with_the_envelope(
    edge_server: Server, method: str, path: str
) -> None:
    request = f"{method} {path} HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n".encode()
    status, body, head = status_and_envelope(exchange(edge_server.port, request))
    assert status == 405, head
    assert body == {"statusCode": "-100", "statusMsg": "异常错误", "requestId": ""}
    assert b"application/json" in head


#: Request targets that are not origin-form (RFC 9112 §3.2): absolute-form, authority-form,
#: asterisk-form, and a query without a path.
NON_ORIGIN = [
    "GET http://host/path",
    "POST http://127.0.0.1" + API_PATH,
    "OPTIONS *",
    "GET *",
    "CONNECT host:443",
    "GET host:443",
    "GET ?a=b",
]


@pytest.mark.parametrize("line", NON_ORIGIN)
def test_a_non_origin_form_target_gets_404_with_the_envelope(
    edge_server: Server, line: str
) -> None:
    request = f"{line} HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n".encode()
    status, body, head = status_and_envelope(exchange(edge_server.port, request))
    assert status == 404, head
    assert body == {"statusCode": "-3", "statusMsg": "无效action", "requestId": ""}


def test_the_connection_stays_usable_after_an_envelope_for_an_unknown_method(
    edge_server: Server,
) -> None:
    """A method known to the parser is answered in the normal request cycle (keep-alive)."""
    with connect(edge_server.port) as conn:
        for method in ("PROPFIND", "GET"):
            conn.sendall(f"{method} /healthz HTTP/1.1\r\nHost: a\r\n\r\n".encode())
            status, _, _ = status_and_envelope(read_answer(conn))
            assert status == (405 if method == "PROPFIND" else 200)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"a" * 40,
        b"G\x00T / HTTP/1.1\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ],
    ids=["tls-client-hello", "nul-in-method", "http2-preface"],
)
def test_a_malformed_request_line_still_gets_the_plain_400(
    edge_server: Server, request_bytes: bytes
) -> None:
    """Not a method at all: the documented plain-text 400 of the HTTP layer (docs/api.md)."""
    answer = exchange(edge_server.port, request_bytes)
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert answer.endswith(b"Invalid HTTP request received.")


def _log_since(server: Server, offset: int) -> str:
    return server.log()[offset:]


def test_a_client_gone_mid_body_is_one_info_line(edge_api: Api) -> None:
    """Signed headers, half the announced body, then the client closes: one info line, no
    traceback, no internal error."""
    server = edge_api.server
    before = len(server.log())
    body = query_body(edge_api, "none")
    conn = connect(server.sandbox_port)
    conn.sendall(signed_head(edge_api, content_length=len(body)) + body[: len(body) // 2])
    time.sleep(0.3)
    conn.close()
    time.sleep(0.7)
    logged = _log_since(server, before)
    assert "Traceback" not in logged and "internal_error" not in logged, logged
    lines = [line for line in logged.splitlines() if "client_gone" in line]
    assert len(lines) == 1, logged
    assert "[info" in lines[0], lines[0]


def test_a_body_not_sent_in_time_closes_the_connection(edge_api: Api) -> None:
    """`[server] body_timeout_seconds` (1.5 s here): the rest of the body never comes."""
    server = edge_api.server
    before = len(server.log())
    body = query_body(edge_api, "none")
    conn = connect(server.sandbox_port)
    conn.sendall(signed_head(edge_api, content_length=len(body)) + body[:10])
    waited, still_open = wait_all_closed([conn], timeout=5)
    conn.close()
    assert still_open == 0 and 1.2 < waited < 3.5, waited
    time.sleep(0.2)
    logged = _log_since(server, before)
    assert "Traceback" not in logged and "internal_error" not in logged, logged
    assert sum("client_gone" in line for line in logged.splitlines()) == 1, logged


def test_unauthenticated_floods_get_104_after_the_burst(sqlite_db: str, tmp_path: Path) -> None:
    """`[server] preauth_rate_per_address` / `preauth_burst_per_address`: an address whose
    requests keep failing authentication is refused with -104 before the signature check;
    another address is not affected, and a signed request from it is served."""
    server = start_server(
        sqlite_db,
        tmp_path,
        env={
            "TELEMEETING_SERVER_PREAUTH_RATE_PER_ADDRESS": "0.5",
            "TELEMEETING_SERVER_PREAUTH_BURST_PER_ADDRESS": "5",
        },
    )
    try:
        api = Api(server, server.new_tenant())
        url = f"{server.sandbox_url}/201612/sid/{api.tenant.sid}/call/TeleMeeting.wx?Sign=bad"
        with httpx.Client(timeout=10) as flood:
            codes = [flood.post(url, content=b"{}").json()["statusCode"] for _ in range(30)]
        assert codes[:5] == ["-202"] * 5, codes
        assert codes[5:] == ["-104"] * 25, codes
        other = httpx.Client(timeout=10, transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        with other:
            assert other.post(url, content=b"{}").json()["statusCode"] == "-202"
        time.sleep(2.2)  # 0.5 token/s: one token back
        assert api.post({"action": "createMeeting"}).code == "0"
        logged = server.log()
        assert logged.count("preauth_limited") <= 5, logged  # rate-limited, not one per refusal
    finally:
        server.stop()
