"""Delivers the outbox to the apps' callback URLs, in order per leg, with retries, fairly.

A pipeline rather than rounds: a slot freed by one push is refilled at once. Each app has its own
bound on pushes in flight (`PER_APP_IN_FLIGHT`), and so has each receiver host
(`PER_HOST_IN_FLIGHT`), both well below the process's (`MAX_IN_FLIGHT`); a claim skips the apps
and hosts at their bound and lets the others take turns, so a receiver that hangs holds up only
its own app's pushes (for at most the timeout each), never another app's.

One loop owns the database side: each turn records, in one transaction, the outcomes of every
attempt that finished since the last turn (one statement per kind of outcome) and claims what
the freed slots can take. Claims are leases (a crash mid-delivery only delays the event). An
event is claimable only when no earlier event of its leg is still pending, so a receiver never
sees `disconnect` before `alerting`. The pushes themselves go out on kept-alive connections,
one pool per receiver origin (callbacks/http.py).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import httpx
import structlog

from telemeeting.callbacks.http import PushClient
from telemeeting.callbacks.policy import RetryPolicy
from telemeeting.config import CallbackSettings
from telemeeting.store.outbox import DEAD, DELIVERED, PENDING, Delivery, Outcome, host_key
from telemeeting.store.unit_of_work import Database, UnitOfWork
from telemeeting.wire import callbacks
from telemeeting.wire.envelope import CONTENT_TYPE

log = structlog.get_logger(__name__)

#: Seconds between looks at the outbox when nothing woke the dispatcher.
IDLE_POLL_SECONDS = 0.5
#: Pushes in flight in this process, over all apps.
MAX_IN_FLIGHT = 256
#: Pushes in flight for one app; the rest of its due pushes wait their turn.
PER_APP_IN_FLIGHT = 32
#: Pushes in flight to one receiver host (the callback URL up to its path), over all its apps.
PER_HOST_IN_FLIGHT = 64
#: Bounds on the events one turn claims and on the finished attempts it records.
MAX_CLAIM = 256
#: How long a graceful stop waits to record the outcomes of finished attempts.
CLOSE_RECORD_SECONDS = 2.0
USER_AGENT = "telemeeting-callbacks/1"


#: Upper bounds (seconds) of the delivery latency buckets: a live push leaves in milliseconds,
#: a retried one after seconds to hours.
LATENCY_BOUNDS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 600.0, 3600.0)


class LatencyHistogram:
    """Cumulative counts per bucket, kept without a metrics library (api/metrics.py exports it)."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BOUNDS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last bucket is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.total += seconds
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1


class Dispatcher:
    def __init__(
        self,
        db: Database,
        settings: CallbackSettings,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        max_in_flight: int = MAX_IN_FLIGHT,
        per_app: int = PER_APP_IN_FLIGHT,
        per_host: int = PER_HOST_IN_FLIGHT,
    ) -> None:
        self._db = db
        self._policy = RetryPolicy.from_settings(settings)
        self._clock = clock
        self._timeout = settings.timeout_seconds
        # Longer than any attempt can last (each attempt is cut at the timeout, in total).
        self._lease = settings.timeout_seconds + 5.0
        self._max_in_flight = max_in_flight
        self._per_app = per_app
        self._per_host = per_host
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._app_in_flight: Counter[str] = Counter()
        self._host_in_flight: Counter[str] = Counter()
        self._finished: list[Outcome] = []
        self._http = PushClient(USER_AGENT, settings.timeout_seconds, transport)
        #: Delivered pushes' time from their state change to the receiver's 2xx (for /metrics).
        self.latency = LatencyHistogram()

    def wake(self) -> None:
        """New pushes were committed, or a slot or a leg became free: look now."""
        self._wake.set()

    async def run(self) -> None:
        last_sweep = time.monotonic()
        try:
            while True:
                self._wake.clear()  # before the turn: a wake during it is not lost
                finished, self._finished = self._finished, []
                free = min(MAX_CLAIM, self._max_in_flight - len(self._in_flight))
                claimed = await self._turn(finished, free) if finished or free > 0 else []
                for delivery in claimed:
                    self._start(delivery)
                # Every finished attempt and every commit of new pushes wakes us: then the next
                # turn records what finished and fills the freed slots.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_POLL_SECONDS)
                if time.monotonic() - last_sweep > IDLE_POLL_SECONDS:
                    last_sweep = time.monotonic()
                    self._http.sweep()
        finally:
            for task in list(self._in_flight):
                task.cancel()

    async def _turn(self, finished: list[Outcome], free: int) -> list[Delivery]:
        """Record `finished` and claim up to `free` events, in one transaction."""
        recorded = finished[:MAX_CLAIM]
        self._finished[:0] = finished[MAX_CLAIM:]
        now = self._clock()
        try:
            async with self._db.unit_of_work() as uow:
                if recorded:
                    await uow.outbox.settle(recorded)
                claimed = await self._claim(uow, now, free) if free > 0 else []
        except asyncio.CancelledError:  # stopping: close() records them if it can
            self._finished[:0] = recorded
            raise
        except Exception:
            log.exception("callbacks.turn_failed", outcomes=len(recorded))
            # Kept to be recorded next time: a late outcome is harmless (it counts only while
            # its attempt is the event's current one), and while nothing can be claimed no new
            # ones come.
            self._finished[:0] = recorded
            return []
        for outcome in recorded:
            if outcome.state == DEAD:
                log.warning(
                    "callback.dead", event_id=outcome.delivery.event_id, error=outcome.error
                )
        return claimed

    async def _claim(self, uow: UnitOfWork, now: float, free: int) -> list[Delivery]:
        """Up to `free` due events, within the room each app and host has left."""
        return await uow.outbox.claim(
            now,
            self._lease,
            free,
            per_app=self._per_app,
            per_host=self._per_host,
            app_rooms={app: self._per_app - n for app, n in self._app_in_flight.items()},
            host_rooms={host: self._per_host - n for host, n in self._host_in_flight.items()},
        )

    def _start(self, delivery: Delivery) -> None:
        host = host_key(delivery.callback_url)
        self._app_in_flight[delivery.app_id] += 1
        self._host_in_flight[host] += 1
        task = asyncio.create_task(self._attempt(delivery, host))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    def _done(self, delivery: Delivery, host: str) -> None:
        for counter, key in ((self._app_in_flight, delivery.app_id), (self._host_in_flight, host)):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]

    async def _attempt(self, delivery: Delivery, host: str) -> None:
        url = (
            callbacks.push_url(delivery.callback_url, delivery.kind)
            if delivery.callback_url
            else ""
        )
        started = time.monotonic()
        started_at = self._clock()
        status: int | None = None
        error = ""
        try:
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
                    callbacks.HEADER_SIGNATURE: callbacks.signature(
                        delivery.secret, timestamp, body
                    ),
                }
                try:
                    # The whole attempt (connecting, sending, the complete answer) is cut at the
                    # timeout: a receiver trickling its answer must not outlive the lease.
                    async with asyncio.timeout(self._timeout):
                        status = await self._http.post(url, body, headers)
                    if not 200 <= status < 300:
                        error = f"HTTP {status}"
                except TimeoutError:
                    error = f"no answer within {self._timeout:g} s"
                except Exception as exc:  # any failure is the attempt's outcome, never a dead task
                    error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            latency_ms = round((time.monotonic() - started) * 1000, 1)
            log.info(
                "callback.attempt",
                event_id=delivery.event_id,
                url=url,
                kind=delivery.kind,
                seq=delivery.seq,
                attempt=delivery.attempt,
                status=status,
                latency_ms=latency_ms,
                outcome="failed" if error else "delivered",
                error=error or None,
            )
            outcome = self._outcome(delivery, error)
            self._finished.append(
                replace(outcome, started_at=started_at, status=status, latency_ms=latency_ms)
            )
        finally:
            self._done(delivery, host)
            self.wake()

    def _outcome(self, delivery: Delivery, error: str) -> Outcome:
        finished_at = self._clock()
        if not error:
            self.latency.observe(finished_at - delivery.pending_since)
            return Outcome(delivery, DELIVERED, finished_at)
        when = self._policy.next_attempt(delivery.attempt, delivery.pending_since, finished_at)
        if when is None:
            return Outcome(delivery, DEAD, finished_at, error)
        return Outcome(delivery, PENDING, when, error)

    async def close(self) -> None:
        """After `run` was cancelled: record the outcomes already known (so that what was
        acknowledged is not sent again after a restart), then close the connections."""
        finished, self._finished = self._finished, []
        if finished:
            try:
                async with asyncio.timeout(CLOSE_RECORD_SECONDS), self._db.unit_of_work() as uow:
                    await uow.outbox.settle(finished)
            except Exception:  # their leases expire and the events are sent again
                log.warning("callbacks.outcomes_not_recorded", outcomes=len(finished))
        await self._http.aclose()
