"""`GET /metrics`: the app's own registry in Prometheus text format; action requests counted by
action and statusCode; database figures read at scrape time, at most once a second.

The platform is real (SQLite, the simulated carrier), driven through the ASGI app in process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from telemeeting.api.app import create_app
from telemeeting.api.metrics import StoreFigures, status_code
from telemeeting.bootstrap import Platform, build_platform
from telemeeting.config import load_settings
from telemeeting.service import admin
from telemeeting.store.connection import DatabaseUnavailable
from telemeeting.store.stats import StoreStats
from telemeeting.wire.auth import signed_headers
from telemeeting.wire.envelope import dump, envelope
from telemeeting.wire.status import Status


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, by name and labels (parsing proves the format)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped: dict[Any, float], name: str, **labels: str) -> float | None:
    return scraped.get((name, frozenset(labels.items())))


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    settings = load_settings(database={"url": f"sqlite+aiosqlite:///{tmp_path / 'tm.db'}"})
    running = build_platform(settings)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8880")


@pytest.mark.parametrize(
    ("status", "extra"),
    [(Status.OK, {"meid": "1"}), (Status.OVERLOADED, {}), (Status.MEETING_NOT_FOUND, {})],
)
def test_the_status_code_is_read_from_the_start_of_the_envelope(
    status: Status, extra: dict[str, str]
) -> None:
    assert status_code(dump(envelope(status, "20261128203015123456000000001", **extra))) == (
        status.code
    )


@pytest.mark.parametrize("body", [b"", b"<html>", b'{"statusCode":"0', memoryview(b"{}")])
def test_a_body_that_is_no_envelope_is_unknown(body: bytes) -> None:
    assert status_code(body) == "unknown"


async def test_requests_are_counted_by_action_and_status_code(platform: Platform) -> None:
    account = await admin.create_account(platform.db)
    app = await admin.create_app(platform.db, account_sid=account.sid, env="production")
    headers, sign = signed_headers(
        account.sid, account.auth_token, datetime.now(UTC), platform.settings.zone
    )
    path = f"/201612/sid/{account.sid}/call/TeleMeeting.wx?Sign={sign}"
    body = {
        "action": "createMeeting",
        "appid": app.appid,
        "parties": [{"name": "p", "phone": "13800138000"}],
    }
    async with client(create_app(platform)) as c:
        created = await c.post(path, content=json.dumps(body), headers=headers)
        assert created.json()["statusCode"] == "0", created.text
        unsigned = await c.post(path.replace(sign, "0" * 32), content=json.dumps(body))
        unknown_action = {**body, "action": "fly"}
        refused = await c.post(path, content=json.dumps(unknown_action), headers=headers)
        await c.get("/")  # not an action request: not counted
        await c.get("/healthz")
        await c.get("/readyz")
        response = await c.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    after = samples(response.text)

    requests = "telemeeting_api_requests_total"
    assert value(after, requests, action="createMeeting", status_code="0") == 1
    # Refused before the action was read or accepted: counted under "unknown".
    auth_code = unsigned.json()["statusCode"]
    assert value(after, requests, action="unknown", status_code=auth_code) == 1
    assert value(after, requests, action="unknown", status_code=refused.json()["statusCode"]) == 1
    counted = sum(v for (name, _), v in after.items() if name == requests)
    assert counted == 3
    latency = "telemeeting_api_request_duration_seconds"
    assert value(after, f"{latency}_count", action="createMeeting") == 1
    assert value(after, f"{latency}_bucket", action="createMeeting", le="+Inf") == 1
    assert 0 < (value(after, f"{latency}_sum", action="createMeeting") or 0) < 10

    assert value(after, "telemeeting_store_up") == 1
    assert value(after, "telemeeting_meetings", state="active") == 1
    assert value(after, "telemeeting_meetings", state="booked") == 0
    legs = {s: value(after, "telemeeting_legs", state=s) for s in ("callout", "alerting", "answer")}
    assert sum(v or 0 for v in legs.values()) == 1, legs
    assert value(after, "telemeeting_legs", state="disconnect") == 0
    for name in (
        "telemeeting_orders_pending",
        "telemeeting_orders_oldest_age_seconds",
        "telemeeting_pushes_pending",
        "telemeeting_pushes_dead",
        "telemeeting_pushes_oldest_pending_age_seconds",
    ):
        assert (value(after, name) or 0) >= 0, name
    assert value(after, "telemeeting_api_admission_refused_total") == 0
    assert value(
        after, "telemeeting_node_info", node=platform.node_id, roles="api,media,dispatcher,clock"
    )
    assert value(after, "process_resident_memory_bytes")


async def test_each_app_has_its_own_registry(platform: Platform) -> None:
    """Several apps in one process (tests, workers) must not clash on the global registry."""
    first, second = create_app(platform), create_app(platform)
    for app in (first, second):
        async with client(app) as c:
            response = await c.get("/metrics")
        assert value(samples(response.text), "telemeeting_store_up") == 1


async def test_admission_refusals_are_reported(platform: Platform) -> None:
    app = create_app(platform)
    app.refused = 7  # type: ignore[attr-defined]
    async with client(app) as c:
        scraped = samples((await c.get("/metrics")).text)
    assert value(scraped, "telemeeting_api_admission_refused_total") == 7
    assert value(scraped, "telemeeting_api_requests_in_flight") == 0


async def test_openmetrics_is_answered_when_asked_for(platform: Platform) -> None:
    async with client(create_app(platform)) as c:
        response = await c.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


class CountingDatabase:
    def __init__(self) -> None:
        self.reads = 0
        self.fail = False

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[Any]:
        self.reads += 1
        await asyncio.sleep(0.01)
        if self.fail:
            raise DatabaseUnavailable("down")
        yield SimpleNamespace(connection=self)

    async def fetch(self, *_: Any) -> list[Any]:
        return [("meeting", "active", 2, None), ("order", "", 3, 1000.0)]


async def test_database_figures_are_read_at_most_once_per_second() -> None:
    now = [0.0]
    db = CountingDatabase()
    figures = StoreFigures(db, max_age=1.0, clock=lambda: now[0])  # type: ignore[arg-type]
    results = await asyncio.gather(*(figures.refresh() for _ in range(10)))
    assert db.reads == 1
    assert results[0] == StoreStats(
        meetings={"booked": 0, "active": 2},
        orders_pending=3,
        oldest_order_at=1000.0,
    )
    now[0] = 0.9
    await figures.refresh()
    assert db.reads == 1
    now[0] = 1.1
    db.fail = True
    assert await figures.refresh() is None  # the scrape answers with store_up 0
    assert db.reads == 2 and figures.latest is None


async def test_push_delivery_latency_is_a_histogram(platform: Platform) -> None:
    """The dispatcher of this process times each delivered push from its state change."""
    assert platform.dispatcher is not None
    for seconds in (0.004, 0.03, 0.03, 7.0):
        platform.dispatcher.latency.observe(seconds)
    async with client(create_app(platform)) as c:
        scraped = samples((await c.get("/metrics")).text)
    name = "telemeeting_push_delivery_seconds"
    assert value(scraped, f"{name}_bucket", le="0.01") == 1
    assert value(scraped, f"{name}_bucket", le="0.05") == 3
    assert value(scraped, f"{name}_bucket", le="+Inf") == 4
    assert value(scraped, f"{name}_count") == 4
    assert value(scraped, f"{name}_sum") == pytest.approx(7.064)


def test_media_figures_of_several_processes_combine() -> None:
    from telemeeting.telephony.driver import combine_media_stats

    parts = [
        {"ticks": 100, "late_ticks": 2, "max_lateness": 0.03, "packets_lost": 5},
        {"ticks": 50, "late_ticks": 0, "max_lateness": 0.002, "packets_lost": 1},
    ]
    assert combine_media_stats(parts) == {
        "ticks": 150,
        "late_ticks": 2,
        "max_lateness": 0.03,
        "packets_lost": 6,
    }
    assert combine_media_stats([]) == {}


async def test_media_figures_are_exported_when_a_mixer_reports(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert platform.media is not None
    async with client(create_app(platform)) as c:  # the simulated carrier mixes nothing
        assert "telemeeting_media_ticks" not in (await c.get("/metrics")).text
    figures = {"ticks": 500, "late_ticks": 3, "max_lateness": 0.025, "packets_lost": 7}
    monkeypatch.setattr(platform.media.driver, "media_stats", lambda: figures)
    async with client(create_app(platform)) as c:
        scraped = samples((await c.get("/metrics")).text)
    assert value(scraped, "telemeeting_media_ticks_total") == 500
    assert value(scraped, "telemeeting_media_late_ticks_total") == 3
    assert value(scraped, "telemeeting_media_tick_lateness_max_seconds") == 0.025
    assert value(scraped, "telemeeting_media_packets_lost") == 7
    assert value(scraped, "telemeeting_media_workers_down") is None  # only SipDriver counts


async def test_dead_media_workers_are_counted_down(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SipDriver drops a dead worker's figures and counts it (issue 16): the gauge shows it."""
    assert platform.media is not None
    figures = {"ticks": 500, "late_ticks": 0, "max_lateness": 0.0, "workers_down": 1}
    monkeypatch.setattr(platform.media.driver, "media_stats", lambda: figures)
    async with client(create_app(platform)) as c:
        scraped = samples((await c.get("/metrics")).text)
    assert value(scraped, "telemeeting_media_workers_down") == 1
