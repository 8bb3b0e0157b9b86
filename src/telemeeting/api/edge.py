"""The outermost ASGI layer of the API app (not the console's): the envelope for requests no
route can serve, and one info line for a client that leaves in the middle of its request.

* A method outside RFC 9110's (GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE) and PATCH
  never reaches a route (Starlette would answer a plain-text 405): HTTP 405 with the envelope
  `-100`, as every other method but POST on an API path gets.
* A request target that is not origin-form (`GET http://host/path`, `OPTIONS *`,
  `CONNECT host:443`) is not a path of ours: HTTP 404 with `-3`. Under httptools the protocol
  (`api.connections`) marks such a request in the scope; under h11 the raw path shows it.
* A client that disconnects before its body is complete (or is disconnected by the body read
  timeout) makes Starlette raise ClientDisconnect in the middle of the endpoint, which an
  endpoint that answers every exception logs as an internal error with a traceback: anyone
  could fill the error log. The `receive` given to the app raises ClientGone instead, a
  BaseException that `except Exception` lets through, like a cancellation: `finally` blocks and
  `except BaseException` clean-ups run, and here it becomes one rate-limited info line.
"""

from __future__ import annotations

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from telemeeting.api.connections import CLOSED_BY_KEY, TARGET_KEY
from telemeeting.wire.envelope import CONTENT_TYPE, dump, envelope
from telemeeting.wire.status import Status

log = structlog.get_logger(__name__)

#: The methods routes may serve; any other is answered here.
SERVED_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)


class ClientGone(BaseException):
    """The client went away before its request was whole (see the module docstring)."""


def _answer(http_status: int, status: Status) -> tuple[Message, Message]:
    body = dump(envelope(status))
    headers = [
        (b"content-type", CONTENT_TYPE.encode("latin-1")),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    return (
        {"type": "http.response.start", "status": http_status, "headers": headers},
        {"type": "http.response.body", "body": body},
    )


_UNKNOWN_METHOD = _answer(405, Status.INTERNAL_ERROR)
_NOT_A_PATH = _answer(404, Status.INVALID_ACTION)


class HttpEdge:
    """Wraps the listeners' app (see the module docstring); lifespan passes through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in SERVED_METHODS:
            await _send(send, _UNKNOWN_METHOD)
            return
        if TARGET_KEY in scope or scope["raw_path"][:1] != b"/":
            await _send(send, _NOT_A_PATH)
            return
        whole = False

        async def receive_or_gone() -> Message:
            nonlocal whole
            message = await receive()
            if message["type"] == "http.request":
                whole = not message.get("more_body", False)
            elif message["type"] == "http.disconnect" and not whole:
                raise ClientGone
            return message

        try:
            await self.app(scope, receive_or_gone, send)
        except ClientGone:
            client = scope.get("client")
            log.info(
                "http.client_gone",
                reason=scope.get(CLOSED_BY_KEY, "disconnected"),
                method=scope["method"],
                path=scope["path"],
                client=client[0] if client else "",
            )


async def _send(send: Send, answer: tuple[Message, Message]) -> None:
    await send(answer[0])
    await send(answer[1])
