"""Delivers the outbox to the apps' callback URLs, in order per leg, with retries.

A pipeline rather than rounds: up to `MAX_IN_FLIGHT` pushes are on the wire at any time, a slot
freed by one push is refilled at once, so a receiver that hangs for one call holds up only that
call's leg, never other legs or apps. Claims are leases (a crash mid-delivery only delays the
event), and outcomes are recorded in batches, one transaction for all that finished together.
An event is claimable only when no earlier event of its leg is still pending, so a receiver
never sees `disconnect` before `alerting`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

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
MAX_IN_FLIGHT = 64
USER_AGENT = "telemeeting-callbacks/1"


@dataclass(frozen=True)
class _Outcome:
    delivery: Delivery
    error: str  # "" when acknowledged
    finished_at: float


class Dispatcher:
    def __init__(
        self,
        db: Database,
        settings: CallbackSettings,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._db = db
        self._policy = RetryPolicy.from_settings(settings)
        self._clock = clock
        self._timeout = settings.timeout_seconds
        # Longer than any attempt can last (each attempt is cut at the timeout, in total).
        self._lease = settings.timeout_seconds + 5.0
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._outcomes: asyncio.Queue[_Outcome] = asyncio.Queue()
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout_seconds),
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(
                max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT
            ),
        )

    def wake(self) -> None:
        """New pushes were committed, or a slot or a leg became free: look now."""
        self._wake.set()

    async def run(self) -> None:
        recorder = asyncio.create_task(self._record_outcomes(), name="callbacks-recorder")
        try:
            while True:
                self._wake.clear()  # before the claim: a wake during it is not lost
                free = MAX_IN_FLIGHT - len(self._in_flight)
                claimed = await self._claim(free) if free > 0 else []
                for delivery in claimed:
                    task = asyncio.create_task(self._attempt(delivery))
                    self._in_flight.add(task)
                    task.add_done_callback(self._in_flight.discard)
                if claimed and len(claimed) == free:
                    continue  # more may be due; claim again once a slot frees up
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_POLL_SECONDS)
        finally:
            recorder.cancel()
            for task in list(self._in_flight):
                task.cancel()

    async def _claim(self, limit: int) -> list[Delivery]:
        try:
            async with self._db.unit_of_work() as uow:
                return await uow.outbox.claim(self._clock(), self._lease, limit)
        except Exception:
            log.exception("callbacks.claim_failed")
            return []

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
                # httpx's timeout applies to each phase; a receiver trickling its answer could
                # outlive the lease, so the whole attempt is cut at the timeout.
                async with asyncio.timeout(self._timeout):
                    response = await self._client.post(url, content=body, headers=headers)
                status = response.status_code
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
            except TimeoutError:
                error = f"no answer within {self._timeout:g} s"
            except Exception as exc:  # any failure is the attempt's outcome, never a dead task
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        log.info(
            "callback.attempt",
            event_id=delivery.event_id,
            url=url,
            kind=delivery.kind,
            seq=delivery.seq,
            attempt=delivery.attempt,
            status=status,
            latency_ms=round((time.monotonic() - started) * 1000, 1),
            outcome="failed" if error else "delivered",
            error=error or None,
        )
        self._outcomes.put_nowait(_Outcome(delivery, error, self._clock()))

    async def _record_outcomes(self) -> None:
        """Record every outcome that is ready in one transaction, then look for successors."""
        while True:
            batch = [await self._outcomes.get()]
            while not self._outcomes.empty():
                batch.append(self._outcomes.get_nowait())
            try:
                await self._record(batch)
            except Exception:  # the leases expire and the events are tried again
                log.exception("callbacks.record_failed", events=len(batch))
            self.wake()

    async def _record(self, batch: list[_Outcome]) -> None:
        async with self._db.unit_of_work() as uow:
            for outcome in batch:
                delivery, error = outcome.delivery, outcome.error
                if not error:
                    await uow.outbox.delivered(delivery, outcome.finished_at)
                    continue
                when = self._policy.next_attempt(
                    delivery.attempt, delivery.pending_since, outcome.finished_at
                )
                if when is None:
                    await uow.outbox.dead(delivery, error)
                    log.warning("callback.dead", event_id=delivery.event_id, error=error)
                else:
                    await uow.outbox.retry_at(delivery, when, error)

    async def close(self) -> None:
        await self._client.aclose()
