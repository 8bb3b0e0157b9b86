"""SipDriver: the same Driver interface with the engine in a media node process."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

import pytest

from telemeeting.domain.model import EndReason
from telemeeting.telephony.driver import Progress
from telemeeting.telephony.sip.driver import SipDriver
from tests.sip.conftest import Route, order
from tests.sip.peers import HOST, ReportLog, Sipp, free_ports

pytestmark = [pytest.mark.timeout(90), pytest.mark.sipp]


@dataclass
class Settings:
    """The shape of config.SipSettings."""

    rtp_port_min: int
    rtp_port_max: int
    routes: list[Route] = field(default_factory=list)
    local_host: str = HOST
    local_port: int = 0


async def test_media_node_process_places_calls_and_reports(workdir):
    answer = Sipp(workdir, "answer.xml", "-rtp_echo")
    busy = Sipp(workdir, "reject.xml", status="486", reason="Busy Here")
    (rtp,) = free_ports(1, span=40)
    settings = Settings(
        rtp,
        rtp + 39,
        [
            Route("^1$", f"sip:1@{answer.uri_host}"),
            Route("^2$", f"sip:2@{busy.uri_host}"),
        ],
    )
    driver = SipDriver(settings, nodes=2)
    reports = ReportLog()
    driver.attach(reports)
    try:
        await driver.dial(order("1", leg="a", meeting="m1"))
        await driver.dial(order("2", leg="b", meeting="m2"))
        assert os.getpid() not in driver.node_pids and len(set(driver.node_pids)) == 2
        await reports.wait_for("a", Progress.ANSWERED, timeout=20)
        ended = await reports.wait_for("b", Progress.ENDED, timeout=20)
        assert ended.reason is EndReason.BUSY
        await driver.set_muted("m1", "a", True)
        await driver.hang_up("m1", "a")
        assert await answer.wait() == 0, answer.log()
        assert await busy.wait() == 0, busy.log()
    finally:
        await driver.close()
    assert all(pid is not None for pid in driver.node_pids) or driver.node_pids == []


async def test_dead_media_node_ends_its_legs(workdir):
    ringing = Sipp(workdir, "no_answer.xml")
    (rtp,) = free_ports(1, span=40)
    driver = SipDriver(Settings(rtp, rtp + 39, [Route(".*", f"sip:x@{ringing.uri_host}")]))
    reports = ReportLog()
    driver.attach(reports)
    try:
        await driver.dial(order("5", leg="z"))
        await reports.wait_for("z", Progress.RINGING, timeout=20)
        pid = driver.node_pids[0]
        assert pid is not None
        os.kill(pid, 9)
        ended = await reports.wait_for("z", Progress.ENDED, timeout=10)
        assert ended.reason is EndReason.FAILED
    finally:
        await driver.close()
        ringing.stop()
    await asyncio.sleep(0)


async def test_media_processes_report_their_mixer_to_the_parent(workdir):
    """The figures /metrics exports (media tick lateness and loss) come from the media process."""
    answer = Sipp(workdir, "answer.xml", "-rtp_echo")
    (rtp,) = free_ports(1, span=40)
    settings = Settings(rtp, rtp + 39, [Route("^1$", f"sip:1@{answer.uri_host}")])
    driver = SipDriver(settings, stats_seconds=0.2)
    reports = ReportLog()
    driver.attach(reports)
    try:
        await driver.dial(order("1", leg="a", meeting="m1"))
        await reports.wait_for("a", Progress.ANSWERED, timeout=20)
        deadline = asyncio.get_running_loop().time() + 10
        while driver.media_stats().get("legs", 0) < 1 or driver.media_stats()["ticks"] < 25:
            assert asyncio.get_running_loop().time() < deadline, driver.media_stats()
            await asyncio.sleep(0.1)
        stats = driver.media_stats()
        assert stats["late_ticks"] <= stats["ticks"] and stats["max_lateness"] >= 0
        assert stats["packets_lost"] >= 0 and stats["packets_late"] >= 0
        await driver.hang_up("m1", "a")
        assert await answer.wait() == 0, answer.log()
    finally:
        await driver.close()
