"""A real HTTP callback receiver on loopback that can be told to fail, hang or be down."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    kind: str  # the query key: CallState, Call or MeetingState
    path: str
    headers: dict[str, str]
    raw: bytes
    at: float

    @property
    def body(self) -> Any:
        return json.loads(self.raw)

    @property
    def seq(self) -> int:
        return int(self.headers["x-telemeeting-seq"])

    @property
    def event_id(self) -> str:
        return self.headers["x-telemeeting-event-id"]

    def signature_valid(self, secret: str) -> bool:
        timestamp = self.headers["x-telemeeting-timestamp"]
        expected = hmac.new(
            secret.encode(), timestamp.encode() + b"." + self.raw, hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(expected, self.headers["x-telemeeting-signature"])


class Receiver:
    """Records every push it acknowledged (2xx); `mode` decides how it answers."""

    def __init__(self, port: int = 0) -> None:
        self.acked: list[Received] = []
        self.refused = 0
        self.attempts = 0  # every request, counted as it arrives
        self.mode = "ok"  # ok | fail | hang | trickle
        self.hang_seconds = 3.0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                with receiver._lock:
                    receiver.attempts += 1
                mode = receiver.mode
                if mode == "trickle":  # 200 at once, then a body that never quite finishes
                    self.send_response(200)
                    self.send_header("Content-Length", "40")
                    self.end_headers()
                    try:
                        for _ in range(40):
                            time.sleep(0.25)
                            self.wfile.write(b" ")
                            self.wfile.flush()
                    except OSError:
                        pass
                    return
                if mode == "hang":
                    time.sleep(receiver.hang_seconds)
                if mode != "ok":
                    with receiver._lock:
                        receiver.refused += 1
                    self.send_response(500)
                    self.end_headers()
                    return
                path, _, query = self.path.partition("?")
                item = Received(
                    query.split("&")[-1],
                    path,
                    {k.lower(): v for k, v in self.headers.items()},
                    raw,
                    time.time(),
                )
                with receiver._lock:
                    receiver.acked.append(item)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok":true}')

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cb/ytx"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def pushes(self) -> list[Received]:
        with self._lock:
            return list(self.acked)

    def wait_for(self, predicate: Any, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pushes = self.pushes()
            if predicate(pushes):
                return pushes
            time.sleep(0.05)
        pushes = self.pushes()
        assert predicate(pushes), [(p.kind, p.body) for p in pushes]
        return pushes
