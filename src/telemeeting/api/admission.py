"""Admission control: a bound on API requests in flight in this process (`[server] max_in_flight`).

A request beyond the bound is answered at once, HTTP 200 with the envelope `-104` and its own
message (Status.OVERLOADED), instead of waiting in a queue that only grows: the requests taken
keep a bounded latency, and a client learns of the overload in milliseconds, not at its timeout.
A pure ASGI wrapper (no BaseHTTPMiddleware): a counter around the call, nothing per request else.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from telemeeting.wire.envelope import CONTENT_TYPE, dump, envelope
from telemeeting.wire.status import Status

log = structlog.get_logger(__name__)

_BODY = dump(envelope(Status.OVERLOADED))
_HEADERS = [
    (b"content-type", CONTENT_TYPE.encode("latin-1")),
    (b"content-length", str(len(_BODY)).encode("latin-1")),
]
#: At most one log line per this many seconds while requests are being refused.
LOG_INTERVAL_SECONDS = 10.0


class AdmissionControl:
    """At most `limit` requests that `counts(scope)` in flight at once; 0 is no bound."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        counts: Callable[[Scope], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0
        #: Requests refused since the start of the process.
        self.refused = 0
        self._counts = counts
        self._clock = clock
        self._logged_at: float | None = None
        self._logged_refused = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.limit <= 0 or scope["type"] != "http" or not self._counts(scope):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self._note_refusal()
            await self.refuse(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    def refuses(self, scope: Scope) -> bool:
        """Whether this request is to be refused now (counted and logged as refused if so).
        The HTTP protocol asks this before the layers above the app run (connections.py): a
        refusal then costs no more than its answer."""
        if self.limit <= 0 or self.in_flight < self.limit or not self._counts(scope):
            return False
        self._note_refusal()
        return True

    def _note_refusal(self) -> None:
        self.refused += 1
        self._log_refusals()

    @staticmethod
    async def refuse(_scope: Scope, _receive: Receive, send: Send) -> None:
        """The refusal: HTTP 200, the envelope -104 (its body is never read)."""
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        await send({"type": "http.response.body", "body": _BODY})

    def _log_refusals(self) -> None:
        now = self._clock()
        if self._logged_at is not None and now - self._logged_at < LOG_INTERVAL_SECONDS:
            return
        log.warning(
            "api.overloaded",
            max_in_flight=self.limit,
            refused=self.refused - self._logged_refused,
        )
        self._logged_at, self._logged_refused = now, self.refused
