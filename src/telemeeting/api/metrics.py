"""`GET /metrics`: Prometheus text format, from a registry of this app's own (never the global
one, so that several apps in one process do not clash).

Two kinds of figures. Counted as requests are answered, in this process: action requests by
action and statusCode, their latency, admission refusals. Read from the database when scraped
(store/stats.py, one statement, reused for a second): meetings and legs in play, carrier orders
and pushes waiting. Those describe the whole cluster, whichever node is scraped.
docs/operations.md lists every metric.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.utils import floatToGoString
from starlette.requests import Request
from starlette.responses import Response

from telemeeting.bootstrap import ROLES, Platform
from telemeeting.callbacks.dispatcher import LatencyHistogram
from telemeeting.store.stats import StatsRepository, StoreStats
from telemeeting.store.unit_of_work import Database

log = structlog.get_logger(__name__)

METRICS_PATH = "/metrics"
#: Where the endpoint notes the action of a request once it is known (the scope of the request).
ACTION_KEY = "telemeeting.action"
#: The action label of requests refused before their action was read (authentication, body).
UNKNOWN = "unknown"
#: Seconds; the API answers in milliseconds, a slow database in seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: A scrape within this long of the last database read reuses its figures.
STORE_MAX_AGE_SECONDS = 1.0
#: A database slower than this leaves its figures out of the scrape (`telemeeting_store_up 0`).
STORE_TIMEOUT_SECONDS = 2.0
_STATUS_PREFIX = b'{"statusCode":"'

class Admission(Protocol):
    """What is read of admission control (`api.admission.AdmissionControl`)."""

    @property
    def refused(self) -> int: ...

    @property
    def in_flight(self) -> int: ...


def status_code(body: bytes | memoryview) -> str:
    """The statusCode of an envelope, which always comes first (wire/envelope.py)."""
    head = bytes(body[:32])
    if head.startswith(_STATUS_PREFIX):
        end = head.find(b'"', len(_STATUS_PREFIX))
        if end > 0:
            return head[len(_STATUS_PREFIX) : end].decode("ascii", "replace")
    return UNKNOWN


class StoreFigures:
    """The database's figures, read at most once per `max_age` whatever the rate of scrapes."""

    def __init__(
        self,
        db: Database,
        max_age: float = STORE_MAX_AGE_SECONDS,
        timeout: float = STORE_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._max_age = max_age
        self._timeout = timeout
        self._clock = clock
        self._lock = asyncio.Lock()
        self._read_at: float | None = None
        #: The last figures read; None when the last read failed (or none was made yet).
        self.latest: StoreStats | None = None

    async def refresh(self) -> StoreStats | None:
        async with self._lock:  # scrapes arriving together share one read
            if self._read_at is not None and self._clock() - self._read_at < self._max_age:
                return self.latest
            try:
                async with asyncio.timeout(self._timeout), self._db.reader() as uow:
                    self.latest = await StatsRepository(uow.connection).snapshot()
            except Exception as exc:  # the scrape still answers, with store_up 0
                log.warning("metrics.store_failed", error=f"{type(exc).__name__}: {exc}")
                self.latest = None
            self._read_at = self._clock()
            return self.latest


class _StoreCollector:
    def __init__(self, figures: StoreFigures, now: Callable[[], float]) -> None:
        self._figures = figures
        self._now = now

    def collect(self) -> Iterable[Metric]:
        stats = self._figures.latest
        yield GaugeMetricFamily(
            "telemeeting_store_up",
            "1 when the database answered the last read of the figures below, else 0",
            value=0 if stats is None else 1,
        )
        if stats is None:
            return
        meetings = GaugeMetricFamily(
            "telemeeting_meetings", "Meetings not ended, by state", labels=["state"]
        )
        for state, count in stats.meetings.items():
            meetings.add_metric([state], count)
        yield meetings
        legs = GaugeMetricFamily(
            "telemeeting_legs", "Calls (legs) of active meetings, by state", labels=["state"]
        )
        for state, count in stats.legs.items():
            legs.add_metric([state], count)
        yield legs
        now = self._now()
        yield GaugeMetricFamily(
            "telemeeting_orders_pending",
            "Carrier orders written and not yet claimed by a media node",
            value=stats.orders_pending,
        )
        yield GaugeMetricFamily(
            "telemeeting_orders_oldest_age_seconds",
            "Age of the oldest carrier order not yet claimed (0 when there is none)",
            value=_age(now, stats.oldest_order_at),
        )
        yield GaugeMetricFamily(
            "telemeeting_pushes_pending",
            "Status pushes waiting for delivery (first attempt or a retry)",
            value=stats.pushes_pending,
        )
        yield GaugeMetricFamily(
            "telemeeting_pushes_dead",
            "Status pushes given up on (until redelivered by the operator)",
            value=stats.pushes_dead,
        )
        yield GaugeMetricFamily(
            "telemeeting_pushes_oldest_pending_age_seconds",
            "How long the oldest pending push has been waiting (0 when there is none)",
            value=_age(now, stats.oldest_push_pending_since),
        )


def _age(now: float, since: float | None) -> float:
    return 0.0 if since is None else max(0.0, now - since)


class _AdmissionCollector:
    def __init__(self) -> None:
        self.admission: Admission | None = None

    def collect(self) -> Iterable[Metric]:
        admission = self.admission
        yield CounterMetricFamily(
            "telemeeting_api_admission_refused",
            "Action requests refused at once with -104 because max_in_flight were in flight",
            value=0 if admission is None else admission.refused,
        )
        yield GaugeMetricFamily(
            "telemeeting_api_requests_in_flight",
            "Action requests being handled now (counted only while max_in_flight > 0)",
            value=0 if admission is None else admission.in_flight,
        )


class _DeliveryCollector:
    """This process's dispatcher: delivered pushes by time from state change to acknowledgement."""

    def __init__(self, latency: LatencyHistogram) -> None:
        self._latency = latency

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(
            "telemeeting_push_delivery_seconds",
            "Delivered pushes: seconds from the state change to the receiver's 2xx (this process)",
        )
        cumulative, buckets = 0, []
        for bound, count in zip(
            (*self._latency.bounds, float("inf")), self._latency.counts, strict=True
        ):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))
        family.add_metric([], buckets, self._latency.total)
        yield family


class _MediaCollector:
    """This process's media (the SIP media processes' mixers, as they last reported)."""

    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        stats = self._read()
        if not stats:  # the simulated carrier mixes nothing
            return
        yield CounterMetricFamily(
            "telemeeting_media_ticks", "Mixer ticks run (20 ms each)", value=stats.get("ticks", 0)
        )
        yield CounterMetricFamily(
            "telemeeting_media_late_ticks",
            "Mixer ticks that ran more than 10 ms late (members hear gaps)",
            value=stats.get("late_ticks", 0),
        )
        yield GaugeMetricFamily(
            "telemeeting_media_tick_lateness_max_seconds",
            "The latest any mixer tick has run since the media process started",
            value=stats.get("max_lateness", 0.0),
        )
        yield GaugeMetricFamily(
            "telemeeting_media_packets_lost",
            "RTP packets the jitter buffers of the calls in progress counted lost",
            value=stats.get("packets_lost", 0),
        )
        yield GaugeMetricFamily(
            "telemeeting_media_packets_late",
            "RTP packets that arrived too late to be played, on the calls in progress",
            value=stats.get("packets_late", 0),
        )
        if "workers_down" in stats:  # SIP media processes (the figures above are the live ones')
            yield GaugeMetricFamily(
                "telemeeting_media_workers_down",
                "Media worker processes that have died (their calls ended; restart the server)",
                value=stats["workers_down"],
            )


class Metrics:
    """The registry of one app, the instruments the endpoint feeds, and the `/metrics` page."""

    def __init__(self, platform: Platform, now: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "telemeeting_api_requests",
            "Action requests answered, by action and the envelope's statusCode",
            ["action", "status_code"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "telemeeting_api_request_duration_seconds",
            "Time to answer an action request, by action",
            ["action"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        node = Info(
            "telemeeting_node", "This process: its node id and roles", registry=self.registry
        )
        roles = ",".join(role for role in ROLES if role in platform.roles)
        node.info({"node": platform.node_id, "roles": roles})
        self._admission = _AdmissionCollector()
        self.registry.register(self._admission)
        if platform.dispatcher is not None:
            self.registry.register(_DeliveryCollector(platform.dispatcher.latency))
        if platform.media is not None:
            self.registry.register(_MediaCollector(platform.media.driver.media_stats))
        self.figures = StoreFigures(platform.db)
        self.registry.register(_StoreCollector(self.figures, now))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        # Labelled children, looked up once: `labels()` takes a lock and builds a tuple.
        self._counted: dict[tuple[str, str], Counter] = {}
        self._timed: dict[str, Histogram] = {}

    def watch(self, admission: Admission) -> None:
        """Report the refusals and requests in flight of this admission control."""
        self._admission.admission = admission

    def observe(self, action: str, code: str, seconds: float) -> None:
        counter = self._counted.get((action, code))
        if counter is None:
            counter = self._counted[action, code] = self._requests.labels(action, code)
        counter.inc()
        histogram = self._timed.get(action)
        if histogram is None:
            histogram = self._timed[action] = self._latency.labels(action)
        histogram.observe(seconds)

    async def respond(self, request: Request) -> Response:
        await self.figures.refresh()
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(self.registry), headers={"Content-Type": content_type})
