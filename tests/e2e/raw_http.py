"""Raw-socket helpers for the HTTP-layer tests: what a hostile or broken client sends, byte for
byte, to a real `telemeeting serve` on 127.0.0.0/8 (never another address)."""

from __future__ import annotations

import json
import resource
import selectors
import socket
import time
from collections.abc import Iterable
from pathlib import Path

import httpx

from telemeeting.wire.auth import make_authorization, make_sign
from tests.servers import Api, Server, now_timestamp, start_server


def connect(port: int, source: str = "127.0.0.1", timeout: float = 5) -> socket.socket:
    """A TCP connection from `source` (any 127.x address is this machine's loopback)."""
    return socket.create_connection(
        ("127.0.0.1", port), timeout=timeout, source_address=(source, 0)
    )


def exchange(port: int, request: bytes, source: str = "127.0.0.1") -> bytes:
    """Send `request`, read until the server closes or one whole answer has arrived."""
    with connect(port, source) as conn:
        conn.sendall(request)
        return read_answer(conn)


def read_answer(conn: socket.socket) -> bytes:
    answer = b""
    while True:
        head, sep, body = answer.partition(b"\r\n\r\n")
        if sep:
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                None,
            )
            if length is not None and len(body) >= length:
                return answer
        try:
            chunk = conn.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return answer
        if not chunk:
            return answer
        answer += chunk


def status_and_envelope(answer: bytes) -> tuple[int, dict[str, object], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = {}
    return status, parsed, head


def is_closed(conn: socket.socket) -> bool:
    """True when the server has closed `conn` (EOF or reset), without blocking."""
    conn.setblocking(False)
    try:
        return conn.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        conn.setblocking(True)


def wait_all_closed(conns: Iterable[socket.socket], timeout: float) -> tuple[float, int]:
    """Wait until every connection is closed by the server; (seconds waited, still open)."""
    selector = selectors.DefaultSelector()
    open_ = set()
    for conn in conns:
        conn.setblocking(False)
        selector.register(conn, selectors.EVENT_READ)
        open_.add(conn)
    started = time.monotonic()
    try:
        while open_ and time.monotonic() - started < timeout:
            for key, _ in selector.select(timeout=0.05):
                conn = key.fileobj
                assert isinstance(conn, socket.socket)
                try:
                    data = conn.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    selector.unregister(conn)
                    open_.discard(conn)
        return time.monotonic() - started, len(open_)
    finally:
        selector.close()


def signed_head(api: Api, func_url: str = "MeetingQuery.wx", content_length: int = 0) -> bytes:
    """The request line and headers of a correctly signed API request."""
    timestamp = now_timestamp()
    sid, token = api.tenant.sid, api.tenant.token
    return (
        f"POST /201612/sid/{sid}/call/{func_url}?Sign={make_sign(sid, token, timestamp)} "
        f"HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {make_authorization(sid, timestamp)}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n"
    ).encode()


def query_body(api: Api, meid: str) -> bytes:
    return json.dumps(
        {"action": "queryMeeting", "appid": api.tenant.sandbox_app, "confid": meid}
    ).encode()


def start_limited_server(
    db: str, tmp_dir: Path, nofile: int, env: dict[str, str] | None = None
) -> Server:
    """`telemeeting serve` with RLIMIT_NOFILE lowered to `nofile` in the child only; ready once
    the production listener's /healthz answers."""

    def lower_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    return start_server(db, tmp_dir, env, preexec_fn=lower_limit, ready=_healthz_answers)


def _healthz_answers(server: Server) -> None:
    httpx.get(f"{server.production_url}/healthz", timeout=1)
