"""The API's request and answer on plain ASGI, without Starlette's Request and Response.

Why: an action request needs its path, four headers, one query parameter, the client and the
body. Starlette builds a URL object, a header list view, parsed query parameters, a Response and
its middleware stack around every request: about a tenth of a queryMeeting's CPU, measured
(docs/performance.md). The other routes (health, metrics, recordings) stay on Starlette.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from starlette.types import Receive, Scope, Send

from telemeeting.api.edge import ClientGone
from telemeeting.wire.envelope import CONTENT_TYPE

_CONTENT_TYPE = CONTENT_TYPE.encode("latin-1")


class BodyTooLarge(Exception):
    """The body is over the limit (declared, or counted while it arrived)."""


class ApiRequest:
    """One action request, read from its ASGI scope on demand."""

    __slots__ = ("_headers", "_receive", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self._receive = receive
        self._headers: dict[str, str] | None = None

    @property
    def path(self) -> str:
        return str(self.scope["path"])

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    @property
    def client_host(self) -> str:
        client = self.scope.get("client")
        return str(client[0]) if client else ""

    @property
    def server_port(self) -> int | None:
        server = self.scope.get("server")
        return int(server[1]) if server and server[1] is not None else None

    def header(self, name: str) -> str | None:
        """A header by its lower-case name (the last one when repeated), latin-1 as HTTP has it."""
        headers = self._headers
        if headers is None:
            headers = self._headers = {
                key.decode("latin-1"): value.decode("latin-1")
                for key, value in self.scope["headers"]
            }
        return headers.get(name)

    def query(self, name: str) -> str | None:
        """A query parameter: exactly `name` first, else the first whose name matches without
        regard to case (clients spell `Sign` variously; the value is what is checked)."""
        raw = self.scope.get("query_string", b"").decode("latin-1")
        if not raw:
            return None
        loose = None
        lowered = name.lower()
        for pair in raw.split("&"):
            key, _, value = pair.partition("=")
            key = unquote_plus(key)
            if key == name:
                return unquote_plus(value)
            if loose is None and key.lower() == lowered:
                loose = unquote_plus(value)
        return loose

    async def body(self, limit: int) -> bytes:
        """The whole body; BodyTooLarge as soon as it is known to exceed `limit` (a declared
        Content-Length over it is refused before anything is read)."""
        declared = self.header("content-length") or ""
        if declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge(declared)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(str(size))
                chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_json(send: Send, http_status: int, body: bytes) -> None:
    """Answer with an envelope already serialized."""
    await send(
        {
            "type": "http.response.start",
            "status": http_status,
            "headers": [
                (b"content-type", _CONTENT_TYPE),
                (b"content-length", str(len(body)).encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
