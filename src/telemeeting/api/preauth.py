"""A cheap per-address limit in front of authentication (`[server] preauth_rate_per_address`,
`preauth_burst_per_address`).

Authentication costs a lookup of the account and an MD5 per request, and the per-account rate
limit comes only after it: before this, a flood of unsigned or badly signed requests was not
limited at all. Each client address (the TCP peer, or behind `[server] trusted_proxies` the
address X-Forwarded-For names, as `network.client_address` decides) has a token bucket. A
request that authentication refuses (-200, -201, -202, -203) spends a token; a request
from an address with no token left is answered at once, before the signature is checked, with
HTTP 200 and the envelope -104 (请求频率过高). Authenticated requests spend nothing, so a busy
client behind one address is never slowed by it; only the failures it sends count.

Per process: N API processes allow N times the rate. The check is a dict lookup and a few float
operations; the answer's first bytes tell whether authentication refused it (the envelope's
first key is always statusCode).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from telemeeting.network import Network, address_in, client_address
from telemeeting.wire.envelope import CONTENT_TYPE, dump, envelope
from telemeeting.wire.status import Status

log = structlog.get_logger(__name__)

#: What authentication answers when it refuses a request. Not -205 (the app check) nor -204:
#: they come after a valid signature, where the per-account rate limit applies.
AUTH_FAILURES = (
    Status.UNKNOWN_ACCOUNT,
    Status.ACCOUNT_DISABLED,
    Status.BAD_AUTHORIZATION,
    Status.BAD_SIGN,
)
_FAILED_PREFIXES = tuple(b'{"statusCode":"%s"' % s.code.encode("ascii") for s in AUTH_FAILURES)
_BODY = dump(envelope(Status.RATE_LIMITED))
_START: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", CONTENT_TYPE.encode("latin-1")),
        (b"content-length", str(len(_BODY)).encode("ascii")),
    ],
}
_REFUSAL: Message = {"type": "http.response.body", "body": _BODY}
#: Above this many addresses, buckets that have refilled are forgotten (they hold nothing).
_PRUNE_ABOVE = 10_000


class AddressBuckets:
    """Token buckets by address: `rate` tokens a second up to `burst`."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        #: address -> [tokens, when they were counted]
        self._buckets: dict[str, list[float]] = {}

    def _refilled(self, address: str) -> list[float] | None:
        bucket = self._buckets.get(address)
        if bucket is None:
            return None
        now = self._clock()
        bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        return bucket

    def has_token(self, address: str) -> bool:
        bucket = self._refilled(address)
        return bucket is None or bucket[0] >= 1.0

    def spend(self, address: str) -> None:
        bucket = self._refilled(address)
        if bucket is None:
            if len(self._buckets) >= _PRUNE_ABOVE:
                self._prune()
            bucket = self._buckets[address] = [self.burst, self._clock()]
        # Concurrent failures may overdraw; the debt is paid back before the next is taken.
        bucket[0] = max(bucket[0] - 1.0, -self.burst)

    def _prune(self) -> None:
        for address in list(self._buckets):
            bucket = self._refilled(address)
            if bucket is not None and bucket[0] >= self.burst:
                del self._buckets[address]


class PreAuthLimit:
    """The ASGI middleware; `counts(scope)` picks the requests it applies to (API actions)."""

    def __init__(
        self,
        app: ASGIApp,
        rate: float,
        burst: int,
        trusted: list[Network],
        counts: Callable[[Scope], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.buckets = AddressBuckets(rate, burst, clock)
        self.enabled = rate > 0
        self._trusted = trusted
        self._counts = counts
        #: Requests refused since the start of the process.
        self.refused = 0

    def _address(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = client[0] if client else ""
        if not self._trusted or not address_in(peer, self._trusted):
            return peer
        forwarded = next(
            (value for name, value in scope["headers"] if name == b"x-forwarded-for"), None
        )
        return client_address(
            peer, forwarded.decode("latin-1") if forwarded else None, self._trusted
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] != "http" or not self._counts(scope):
            await self.app(scope, receive, send)
            return
        address = self._address(scope)
        if not self.buckets.has_token(address):
            self.refused += 1
            log.warning("api.preauth_limited", client=address, refused=self.refused)
            await send(_START)
            await send(_REFUSAL)
            return
        first_body = True

        async def send_and_count(message: Message) -> None:
            nonlocal first_body
            if first_body and message["type"] == "http.response.body":
                first_body = False
                if message.get("body", b"").startswith(_FAILED_PREFIXES):
                    self.buckets.spend(address)
            await send(message)

        await self.app(scope, receive, send_and_count)
