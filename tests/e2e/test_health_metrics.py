"""Health and metrics of a running `telemeeting serve`, on SQLite and PostgreSQL: `/healthz`,
`/readyz` and `/metrics` on both listeners, outside the ytx path space."""

from __future__ import annotations

import time
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import Api, Server

REQUESTS = "telemeeting_api_requests_total"


def scrape(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(f"{base}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(scraped: dict[Any, float], name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def test_healthz_and_readyz_answer_on_both_listeners(server: Server) -> None:
    for base in (server.production_url, server.sandbox_url):
        alive = httpx.get(f"{base}/healthz", timeout=10)
        assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
        ready = httpx.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready", "roles": ["api", "media", "dispatcher", "clock"]}
        assert ready.headers["content-type"] == "application/json"
        assert httpx.head(f"{base}/readyz", timeout=10).status_code == 200
    for path in ("/readyz", "/metrics"):  # GET only; anything else is no API path
        posted = httpx.post(f"{server.sandbox_url}{path}", timeout=10)
        assert (posted.status_code, posted.json()["statusCode"]) == (404, "-3")


def test_metrics_parse_and_count_a_create_meeting(api: Api) -> None:
    base = api.server.sandbox_url
    before = scrape(base)
    assert value(before, "telemeeting_store_up") == 1
    created_before = value(before, REQUESTS, action="createMeeting", status_code="0")

    api.create_meeting(parties=[{"name": "p", "phone": "13800138000"}])

    after = scrape(base)
    created = value(after, REQUESTS, action="createMeeting", status_code="0")
    assert created == created_before + 1
    latency = "telemeeting_api_request_duration_seconds_count"
    # The shared server's histogram also times other tests' refused createMeetings: compare deltas.
    timed_before = value(before, latency, action="createMeeting")
    assert value(after, latency, action="createMeeting") == timed_before + 1
    assert scrape(api.server.production_url)  # the other listener serves the same registry
    # Database figures are read at most once a second: the meeting shows within a moment.
    deadline = time.monotonic() + 10

    def legs(figures: dict) -> float:
        return sum(v for (name, _), v in figures.items() if name == "telemeeting_legs")

    # Other tests' meetings share this server: wait until the figures include ours.
    while value(after, "telemeeting_meetings", state="active") < 1 or legs(after) < 1:
        assert time.monotonic() < deadline, "no active meeting with a call in /metrics"
        time.sleep(0.3)
        after = scrape(base)
    for name in (
        "telemeeting_orders_pending",
        "telemeeting_orders_oldest_age_seconds",
        "telemeeting_pushes_pending",
        "telemeeting_pushes_dead",
        "telemeeting_pushes_oldest_pending_age_seconds",
    ):
        assert (name, frozenset()) in after, name
