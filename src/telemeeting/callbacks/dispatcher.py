"""Delivers the outbox to the apps' callback URLs, in order per leg, with retries.

Each round claims due events (leased, so a crash mid-delivery only delays them), POSTs them
concurrently and records the outcome. An event is claimable only when no earlier event of its
leg is still pending, so a receiver never sees `disconnect` before `alerting`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import httpx
import structlog

from telemeeting.callbacks.policy import RetryPolicy
from telemeeting.config import CallbackSettings
from telemeeting.store.outbox import Delivery
from telemeeting.store.unit_of_work import Database
from telemeeting.wire import callbacks
from telemeeting.wire.envelope import CONTENT_TYPE

log = structlog.get_logger(__name__)

#: Seconds between looks at the outbox when nothing woke the dispatcher.
IDLE_POLL_SECONDS = 0.5
BATCH = 64
USER_AGENT = "telemeeting-callbacks/1"


class Dispatcher:
    def __init__(
        self,
        db: Database,
        settings: CallbackSettings,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._db = db
        self._timeout = settings.timeout_seconds
        self._policy = RetryPolicy.from_settings(settings)
        self._clock = clock
        self._lease = settings.timeout_seconds + 5.0
        self._wake = asyncio.Event()
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout_seconds),
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=BATCH, max_keepalive_connections=BATCH),
        )

    def wake(self) -> None:
        """New pushes were committed: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                sent = await self.dispatch_once()
            except Exception:
                log.exception("callbacks.round_failed")
                sent = 0
            if sent:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_POLL_SECONDS)

    async def dispatch_once(self) -> int:
        """One round: claim what is due and attempt it; how many were attempted."""
        async with self._db.unit_of_work() as uow:
            due = await uow.outbox.claim(self._clock(), self._lease, BATCH)
        if due:
            await asyncio.gather(*(self._attempt(delivery) for delivery in due))
        return len(due)

    async def _attempt(self, delivery: Delivery) -> None:
        url = (
            callbacks.push_url(delivery.callback_url, delivery.kind)
            if delivery.callback_url
            else ""
        )
        started = time.monotonic()
        status: int | None = None
        error = ""
        if not url:
            error = "the app has no callback URL"
        else:
            body = delivery.body.encode("utf-8")
            timestamp = str(int(self._clock()))
            headers = {
                "Content-Type": CONTENT_TYPE,
                callbacks.HEADER_EVENT_ID: delivery.event_id,
                callbacks.HEADER_SEQ: str(delivery.seq),
                callbacks.HEADER_TIMESTAMP: timestamp,
                callbacks.HEADER_SIGNATURE: callbacks.signature(delivery.secret, timestamp, body),
            }
            try:
                response = await self._client.post(url, content=body, headers=headers)
                status = response.status_code
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        latency_ms = round((time.monotonic() - started) * 1000, 1)
        await self._record(delivery, error)
        log.info(
            "callback.attempt",
            event_id=delivery.event_id,
            url=url,
            kind=delivery.kind,
            seq=delivery.seq,
            attempt=delivery.attempt,
            status=status,
            latency_ms=latency_ms,
            outcome="delivered" if not error else "failed",
            error=error or None,
        )

    async def _record(self, delivery: Delivery, error: str) -> None:
        now = self._clock()
        async with self._db.unit_of_work() as uow:
            if not error:
                await uow.outbox.delivered(delivery.event_id, now)
                return
            when = self._policy.next_attempt(delivery.attempt, delivery.pending_since, now)
            if when is None:
                await uow.outbox.dead(delivery.event_id, error)
                log.warning("callback.dead", event_id=delivery.event_id, error=error)
            else:
                await uow.outbox.retry_at(delivery.event_id, when, error)

    async def close(self) -> None:
        await self._client.aclose()
