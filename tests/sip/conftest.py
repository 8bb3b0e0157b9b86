"""Fixtures for the SIP driver tests: an engine bound to free ports, with a report log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from telemeeting.telephony.driver import DialOrder
from telemeeting.telephony.sip.engine import SipEngine
from tests.sip.peers import HOST, ReportLog, free_ports


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sipp: needs sipp (Debian sip-tester); fails under CI=true")
    config.addinivalue_line("markers", "baresip: needs baresip-core; fails under CI=true")


@dataclass
class Route:
    match: str
    target: str
    username: str = ""
    password: str = ""


EngineFactory = Callable[..., SipEngine]


@pytest.fixture
async def make_engine() -> AsyncIterator[Callable[..., tuple[SipEngine, ReportLog]]]:
    """make_engine(routes, **options) -> (started engine, its report log); closed afterwards."""
    engines: list[SipEngine] = []

    async def make(routes: list[Route], **options: object) -> tuple[SipEngine, ReportLog]:
        (rtp_base,) = free_ports(1, span=40)
        engine = SipEngine(
            local_host=HOST,
            local_port=0,
            rtp_port_min=rtp_base,
            rtp_port_max=rtp_base + 39,
            routes=routes,
            **options,  # type: ignore[arg-type]
        )
        log = ReportLog()
        engine.attach(log)
        await engine.start()
        engines.append(engine)
        return engine, log

    yield make  # type: ignore[misc]
    for engine in engines:
        await engine.close()


def order(number: str, leg: str = "leg1", meeting: str = "m1", extension: str = "") -> DialOrder:
    return DialOrder(meeting, leg, number, extension, "13800000000", "production")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
