"""The HTTP client of the pushes: HTTP/1.1 POSTs on keep-alive connections, one pool per origin.

Why not httpx for every push: its connection pool scans all of its connections on every request
and its layers (anyio, h11, the request and response models) cost about 1.2 ms of CPU per POST on
one connection and 4 ms with 64 (docs/performance.md), more than everything else a push costs
together. A push needs little of HTTP: one POST with a few ASCII headers, the status of the
answer, the answer read to its end (so that the connection can be used again) and a bound on the
time. That is written here on asyncio's protocols with httptools' parser (uvicorn's, already a
dependency); URLs are parsed by httpx, once per callback URL.

httpx still sends the pushes that must go through a proxy (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY
and NO_PROXY are honoured as before), and all of them when a transport is given (tests).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
import time
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

import httptools
import httpx

#: An idle connection older than this is closed rather than used (httpx's default too).
KEEPALIVE_EXPIRY_SECONDS = 5.0
#: Idle connections kept per origin; more are closed when they come back.
MAX_IDLE_PER_ORIGIN = 64


class PushError(Exception):
    """The receiver's answer was not a complete HTTP response."""


class ConnectionClosed(PushError):
    """The receiver closed the connection before its answer was complete."""


@dataclass(frozen=True)
class Target:
    """A push URL, parsed once: where to connect and the request head to send."""

    origin: str  # scheme://host:port, the key of the connection pool
    host: str  # to connect to (an IPv6 address without brackets)
    port: int
    tls: bool
    server_hostname: str | None
    head: bytes  # request line and the headers that depend only on the URL


@lru_cache(maxsize=4096)
def parse_target(url: str) -> Target:
    """`http(s)://[user:password@]host[:port]/path?query` as httpx would send it."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise PushError(f"not an http(s) URL: {url}")
    tls = parsed.scheme == "https"
    port = parsed.port or (443 if tls else 80)
    raw_host = parsed.raw_host.decode("ascii")
    bracketed = f"[{raw_host}]" if ":" in raw_host else raw_host
    host_header = bracketed if parsed.port is None else f"{bracketed}:{parsed.port}"
    lines = [f"POST {parsed.raw_path.decode('ascii')} HTTP/1.1", f"Host: {host_header}"]
    if parsed.userinfo:  # httpx sends URL credentials as basic auth; so do we
        user, _, password = parsed.userinfo.decode("ascii").partition(":")
        pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}".encode()
        lines.append(f"Authorization: Basic {base64.b64encode(pair).decode('ascii')}")
    head = ("\r\n".join(lines) + "\r\n").encode("ascii")
    return Target(
        origin=f"{parsed.scheme}://{bracketed}:{port}",
        host=raw_host,
        port=port,
        tls=tls,
        server_hostname=raw_host if tls else None,
        head=head,
    )


def origin_of(url: str) -> str:
    """The pool key of a callback URL (scheme, host and port); the URL itself if unparsable."""
    try:
        return parse_target(url).origin
    except Exception:
        return url


class _Connection(asyncio.Protocol):
    """One keep-alive connection: sends a request, resolves with the status of the answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.requests = 0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[int] | None = None
        self._status = 0
        self._received = False  # any byte of the current answer
        self._keep_alive = False

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(PushError("the receiver switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(PushError(f"invalid HTTP answer: {exc}"))

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._status >= 200 and not self._keep_alive:
            waiter.set_result(self._status)  # an answer whose body ends with the connection
        else:
            error = ConnectionClosed("the receiver closed the connection before answering")
            waiter.set_exception(error)
            waiter.exception()  # retrieved: not logged if nobody waits any more

    # -- httptools callbacks

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._keep_alive = self._parser.should_keep_alive()

    def on_message_complete(self) -> None:
        if self._status < 200:  # 100 Continue and other interim answers: the real one follows
            self._status = 0
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(self._status)

    # -- used by the pool

    def _fail(self, error: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
            waiter.exception()
        self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    @property
    def received(self) -> bool:
        return self._received

    @property
    def keep_alive(self) -> bool:
        return self._keep_alive and not self.closed

    async def send(self, request: bytes) -> int:
        assert self.transport is not None and not self.closed
        self._waiter = asyncio.get_running_loop().create_future()
        self._status = 0
        self._received = False
        self._keep_alive = False
        self.requests += 1
        self.transport.write(request)
        try:
            return await self._waiter
        finally:
            self._waiter = None


class PushClient:
    """POSTs to callback URLs on kept-alive connections, one pool per origin.

    No bound on connections per origin: the dispatcher bounds the pushes in flight per app and
    per origin, and each push uses one connection at a time.
    """

    def __init__(
        self,
        user_agent: str,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._common = f"User-Agent: {user_agent}\r\nAccept: */*\r\n".encode("ascii")
        self._idle: dict[str, deque[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._proxies = urllib.request.getproxies_environment()
        self._forced_httpx = transport is not None
        self._httpx: httpx.AsyncClient | None = None
        self._httpx_options: dict[str, object] = {
            "timeout": httpx.Timeout(timeout),
            "transport": transport,
            "follow_redirects": False,
            "headers": {"User-Agent": user_agent},
        }

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """The status of the receiver's complete answer. The caller bounds the time: on
        cancellation the connection is closed, never reused."""
        if self._forced_httpx or self._proxied(url):
            return await self._post_httpx(url, body, headers)
        target = parse_target(url)
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = b"".join(
            (
                target.head,
                self._common,
                lines.encode("latin-1"),
                b"Content-Length: %d\r\n\r\n" % len(body),
                body,
            )
        )
        connection = self._idle_connection(target.origin)
        if connection is not None:
            try:
                return await self._exchange(target, connection, request)
            except ConnectionClosed:
                if connection.received:
                    raise
                # The receiver closed the idle connection as we sent: nothing of ours was
                # answered or, as far as HTTP can tell, read. Once more on a new connection.
        connection = await self._connect(target)
        return await self._exchange(target, connection, request)

    async def _exchange(self, target: Target, connection: _Connection, request: bytes) -> int:
        try:
            status = await connection.send(request)
        except BaseException:
            connection.abort()
            raise
        if connection.keep_alive:
            self._release(target.origin, connection)
        else:
            connection.abort()
        return status

    def _idle_connection(self, origin: str) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        expired = time.monotonic() - KEEPALIVE_EXPIRY_SECONDS
        while idle:
            connection = idle.pop()  # the most recently used: the likeliest to be open
            if not connection.closed and connection.idle_since > expired:
                return connection
            connection.abort()
        return None

    def _release(self, origin: str, connection: _Connection) -> None:
        idle = self._idle.setdefault(origin, deque())
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            connection.abort()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    async def _connect(self, target: Target) -> _Connection:
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = None
        if target.tls:
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()  # certifi, or SSL_CERT_FILE/_DIR
            context = self._ssl
        _, connection = await loop.create_connection(
            _Connection,
            target.host,
            target.port,
            ssl=context,
            server_hostname=target.server_hostname,
        )
        return connection

    def sweep(self) -> None:
        """Close idle connections past their expiry or closed by the receiver."""
        expired = time.monotonic() - KEEPALIVE_EXPIRY_SECONDS
        for origin, idle in list(self._idle.items()):
            kept: deque[_Connection] = deque()
            for connection in idle:
                if not connection.closed and connection.idle_since > expired:
                    kept.append(connection)
                else:
                    connection.abort()
            if kept:
                self._idle[origin] = kept
            else:
                del self._idle[origin]

    def _proxied(self, url: str) -> bool:
        if not self._proxies:
            return False
        scheme = "https" if url.startswith("https:") else "http"
        if scheme not in self._proxies and "all" not in self._proxies:
            return False
        host = urllib.parse.urlsplit(url).hostname or ""
        return not urllib.request.proxy_bypass_environment(  # type: ignore[attr-defined]
            host, self._proxies
        )

    async def _post_httpx(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        if self._httpx is None:
            self._httpx = httpx.AsyncClient(**self._httpx_options)  # type: ignore[arg-type]
        response = await self._httpx.post(url, content=body, headers=dict(headers))
        return response.status_code

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.abort()
        self._idle.clear()
        if self._httpx is not None:
            await self._httpx.aclose()
