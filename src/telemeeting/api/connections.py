"""The API listeners' connections: caps, read timeouts, and what the HTTP parser refuses.

uvicorn's protocols bound none of this: a connection that never sends a byte, or sends one
header byte a second, stays open for ever, and any number of them may be open. Its httptools
protocol answers an unknown method (`FOO /`) or a target the parser rejects (`GET host:443`)
with a plain-text 400 before the app runs. The protocols here are uvicorn's own, subclassed:

* a connection with no request in progress (new, or after an answer) is closed after
  `[server] keepalive_seconds`; a request's headers must be complete `header_timeout_seconds`
  after its first byte, its body `body_timeout_seconds` after its headers. The timers are armed
  only when a request is left incomplete by a read: a request that arrives in one read (almost
  all of them) costs no timer at all;
* at most `max_connections` connections per process and `max_connections_per_address` per client
  address (the TCP peer; trusted proxies are not capped): beyond them a connection is closed at
  once, before anything is read (cheapest for us, and unambiguous for the client);
* (httptools) an unknown method token gets HTTP 405 with the envelope -100, a request target
  the parser refuses gets 404 with -3, both answered and closed here; a target the parser takes
  but that is not origin-form (`http://host/path`, `*`) reaches the app as `/`, marked in the
  scope (TARGET_KEY), and `api.edge` answers it 404 -3 in the normal cycle. Anything else the
  parser refuses keeps uvicorn's plain-text 400 (docs/api.md).

`guard_accepts` stops the standard asyncio loop from logging an accept() failure per pending
connection (EMFILE at the file limit), and logs such failures rate-limited, on either loop.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import resource
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

import h11
import httptools
import structlog
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from telemeeting.api.admission import AdmissionControl
from telemeeting.api.coalesce import CoalescingWriter
from telemeeting.config import ServerSettings
from telemeeting.network import Network, address_in
from telemeeting.wire.envelope import CONTENT_TYPE, dump, envelope
from telemeeting.wire.status import Status

log = structlog.get_logger(__name__)

#: Scope key: the request target as sent, when it was not origin-form (httptools only; under
#: h11 the scope's raw_path is the target as sent).
TARGET_KEY = "telemeeting.request_target"
#: Scope key: why the server closed the connection under a request in progress.
CLOSED_BY_KEY = "telemeeting.closed_by"

#: accept() failures that mean "out of a resource", not "this connection is bad".
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: The part of the file limit always left to everything but client connections (the database,
#: pushes, SIP and RTP sockets, log files): an eighth, and at least this many descriptors.
FD_RESERVE_MIN = 64
#: RFC 9110 §5.6.2 tchar: what an HTTP method token is made of.
_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_MAX_METHOD = 32


class Phase(enum.Enum):
    """Where a connection is in its request cycle, as far as its timers are concerned."""

    IDLE = "idle"  # no request in progress: uvicorn's keep-alive timer runs
    HEADERS = "headers"  # a request's first byte has arrived, its headers have not all
    BODY = "body"  # headers complete, body not
    APP = "app"  # the request is whole; the app's time is bounded elsewhere


def effective_max_connections(configured: int, file_limit: int | None = None) -> int:
    """`configured`, lowered to leave FD_RESERVE_MIN or an eighth of the file limit free.

    Refusing a connection beyond the cap frees its descriptor at once, so accept() keeps
    working and never fails with EMFILE because of clients alone. 0 stays 0 (no cap)."""
    if configured <= 0:
        return 0
    if file_limit is None:
        file_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if file_limit == resource.RLIM_INFINITY or file_limit <= 0:
        return configured
    reserve = max(FD_RESERVE_MIN, file_limit // 8)
    return max(1, min(configured, file_limit - reserve))


@dataclass(frozen=True)
class Limits:
    """The connection settings of one API process."""

    header_timeout: float
    body_timeout: float
    max_connections: int
    max_per_address: int
    trusted: tuple[Network, ...]

    @classmethod
    def from_settings(cls, settings: ServerSettings, trusted: list[Network]) -> Limits:
        return cls(
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            max_connections=effective_max_connections(settings.max_connections),
            max_per_address=settings.max_connections_per_address,
            trusted=tuple(trusted),
        )


class ConnectionGuard:
    """Counts this process's open connections, in all and per client address."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.open = 0
        self.by_address: dict[str, int] = {}
        #: Connections refused since the start of the process.
        self.refused = 0

    def admit(self, address: str) -> str | None:
        """Take a slot for a connection from `address`: None, or why it is refused."""
        limits = self.limits
        if limits.max_connections and self.open >= limits.max_connections:
            self.refused += 1
            return "max_connections"
        count = self.by_address.get(address, 0)
        if (
            limits.max_per_address
            and count >= limits.max_per_address
            and not address_in(address, list(limits.trusted))
        ):
            self.refused += 1
            return "max_connections_per_address"
        self.open += 1
        self.by_address[address] = count + 1
        return None

    def release(self, address: str) -> None:
        self.open -= 1
        count = self.by_address.get(address, 0) - 1
        if count > 0:
            self.by_address[address] = count
        else:
            self.by_address.pop(address, None)


def _envelope_answer(http_status: int, status: Status) -> bytes:
    body = dump(envelope(status))
    return b"".join(
        [
            STATUS_LINE[http_status],
            b"content-type: ",
            CONTENT_TYPE.encode("latin-1"),
            b"\r\ncontent-length: ",
            str(len(body)).encode("ascii"),
            b"\r\nconnection: close\r\n\r\n",
            body,
        ]
    )


_UNKNOWN_METHOD = _envelope_answer(405, Status.INTERNAL_ERROR)
_BAD_TARGET = _envelope_answer(404, Status.INVALID_ACTION)


def is_method_token(data: bytes) -> bool:
    """Whether `data` starts (after blank lines) with something shaped like a method: a token
    of tchar up to the first space or the end. A TLS hello or a NUL is not; `FOO` and `get` are."""
    start = 0
    while start < len(data) and data[start] in b"\r\n":
        start += 1
    token = data[start : start + _MAX_METHOD + 1].split(b" ", 1)[0]
    return 0 < len(token) <= _MAX_METHOD and all(byte in _TCHAR for byte in token)


if TYPE_CHECKING:
    _Base = HttpToolsProtocol
else:
    _Base = object


class _Limited(_Base):
    """The parser-independent half: the caps and the timers (see the module docstring)."""

    guard: ClassVar[ConnectionGuard]
    #: The API's admission control (None: nothing to refuse early on this listener set).
    admission: ClassVar[AdmissionControl | None] = None

    _refused = False
    _address = ""
    _phase = Phase.IDLE
    _timer: asyncio.TimerHandle | None = None
    _timer_phase: Phase | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else ""
        refused = self.guard.admit(address)
        if refused is not None:
            self._refused = True
            log.warning(
                "http.connection_refused",
                reason=refused,
                client=address,
                refused_total=self.guard.refused,
            )
            transport.close()
            return
        self._address = address
        super().connection_made(cast(asyncio.Transport, transport))
        # uvicorn arms its keep-alive timer only after an answer: a new connection that never
        # sends a byte would stay open for ever. Its own timer, cancelled by the first byte.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self.guard.release(self._address)
        self._cancel_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # idle again (not a pipelined request)
            self._phase = Phase.IDLE
            self._cancel_timer()

    # ---- timers ----

    def _settle_timer(self) -> None:
        """After a read: the timer of the phase the read left the connection in."""
        phase = self._phase
        if phase is self._timer_phase:
            return  # the clock of this phase keeps running from where it started
        self._cancel_timer()
        if phase is Phase.HEADERS:
            seconds = self.guard.limits.header_timeout
        elif phase is Phase.BODY:
            seconds = self.guard.limits.body_timeout
        else:
            return
        if not self.transport.is_closing():
            self._timer = self.loop.call_later(seconds, self._expire, phase)
            self._timer_phase = phase

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_phase = None

    def _expire(self, phase: Phase) -> None:
        self._timer = self._timer_phase = None
        if self.transport.is_closing():
            return
        if phase is Phase.HEADERS:
            log.info("http.header_timeout", client=self._address)
        elif self.cycle is not None:  # the app is reading the body: it logs the one line
            cast(dict[str, Any], self.cycle.scope)[CLOSED_BY_KEY] = "body_timeout"
        self.transport.close()


class LimitedHttpToolsProtocol(_Limited, HttpToolsProtocol):
    """uvicorn's httptools protocol with the caps, the timers and the envelope answers."""

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._phase is Phase.IDLE:
            self._phase = Phase.HEADERS
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserInvalidMethodError:
            if is_method_token(data):
                self._answer_and_close(_UNKNOWN_METHOD)
            else:
                self._plain_400()
            return
        except httptools.HttpParserInvalidURLError:
            self._answer_and_close(_BAD_TARGET)
            return
        except httptools.HttpParserError:
            self._plain_400()
            return
        except httptools.HttpParserUpgrade:
            # CONNECT or an Upgrade header (WebSockets are off): the request has been handed
            # to the app as a plain request; the parser takes nothing more on this connection.
            if self.cycle is not None:
                self.cycle.keep_alive = False
        self._settle_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = Phase.HEADERS

    def on_headers_complete(self) -> None:
        target = self.url
        if target[:1] != b"/":  # absolute-form, authority-form or asterisk-form
            cast(dict[str, Any], self.scope)[TARGET_KEY] = target
            self.url = b"/"
        self._phase = Phase.BODY
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not before:  # a new request: its answer in one send()
            cycle.transport = cast(asyncio.Transport, CoalescingWriter(self.transport, self.loop))

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        """Start the request's task; when admission control refuses it, the task runs the bare
        refusal instead of the app and the layers above it (the edge, the per-address limit):
        under overload most requests are refusals, and their cost is what the accepted
        requests lose to them."""
        admission = self.admission
        if admission is not None and admission.refuses(cast(dict[str, Any], cycle.scope)):
            app = admission.refuse
        super()._start_asgi_task(cycle, app)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        cycle = self.cycle
        if cycle is not None and cycle.response_complete and not self.pipeline:
            # Answered before its body ended (a refusal that did not read it): nothing is in
            # progress any more, and the first byte cancelled uvicorn's keep-alive timer.
            self._phase = Phase.IDLE
            if self.timeout_keep_alive_task is None:
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self.timeout_keep_alive_handler
                )
        else:
            self._phase = Phase.APP

    def _answer_and_close(self, answer: bytes) -> None:
        self._cancel_timer()
        self.transport.write(answer)
        self.transport.close()

    def _plain_400(self) -> None:
        """uvicorn's answer to what is not HTTP/1.1 (its words, rate-limited here)."""
        self._cancel_timer()
        log.warning("http.invalid_request", detail="Invalid HTTP request received.")
        self.send_400_response("Invalid HTTP request received.")


class LimitedH11Protocol(_Limited, H11Protocol):  # type: ignore[misc]
    """uvicorn's h11 protocol with the caps and the timers (`[server] http = "h11"`); h11
    passes every method and target to the app, where `api.edge` answers them."""

    conn: h11.Connection

    def data_received(self, data: bytes) -> None:
        if self._phase is Phase.IDLE:
            self._phase = Phase.HEADERS
        super().data_received(data)
        self._phase_from_h11()
        self._settle_timer()

    def _phase_from_h11(self) -> None:
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._phase = Phase.BODY
        elif state is not h11.IDLE:
            self._phase = Phase.APP


def protocol_class(
    settings: ServerSettings,
    http: str,
    trusted: list[Network],
    admission: AdmissionControl | None = None,
) -> type[asyncio.Protocol]:
    """The protocol uvicorn runs for this process: `http` is "httptools" or "h11";
    `admission`, the API's admission control, lets httptools refuse before the app runs."""
    base: type[_Limited] = LimitedHttpToolsProtocol if http == "httptools" else LimitedH11Protocol
    guard = ConnectionGuard(Limits.from_settings(settings, trusted))
    attributes = {"guard": guard, "admission": admission}
    return cast(type[asyncio.Protocol], type(base.__name__, (base,), attributes))


# ---- accept() at the file limit ----


class _StopAfterResourceError:
    """A listening socket whose accept() reports a resource error once per event-loop tick.

    CPython's selector loop (3.11, 3.12) goes on calling accept() after EMFILE for the rest of
    its backlog-sized loop, logging each failure and scheduling one retry per failure: tens of
    thousands of log lines a minute at a low file limit. After the first failure this socket
    says "nothing pending", so the loop does what it meant to: one line, one retry a second.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.wrapped = sock
        self._failed = False

    def accept(self) -> tuple[socket.socket, Any]:
        if self._failed:
            raise BlockingIOError
        try:
            return self.wrapped.accept()
        except OSError as exc:
            if exc.errno in RESOURCE_ERRNOS:
                self._failed = True
            raise

    def fileno(self) -> int:
        return self.wrapped.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


def guard_accepts(loop: asyncio.AbstractEventLoop) -> None:
    """Back off and log rate-limited when accept() fails for want of resources.

    uvloop (libuv) already closes the pending connections and waits for new ones; the standard
    selector loop is given `_StopAfterResourceError` (its retry comes a second later). On both,
    the loop's report of such a failure is one rate-limited warning without a traceback."""
    accept = getattr(loop, "_accept_connection", None)
    if isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop) and accept is not None:

        def accept_connection(protocol_factory: Callable[[], Any], sock: Any, *args: Any) -> None:
            if isinstance(sock, _StopAfterResourceError):
                sock = sock.wrapped
            accept(protocol_factory, _StopAfterResourceError(sock), *args)

        loop._accept_connection = accept_connection  # type: ignore[attr-defined]

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS:
            log.warning("http.accept_failed", error=exc.strerror or str(exc), backoff_seconds=1)
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handle)
