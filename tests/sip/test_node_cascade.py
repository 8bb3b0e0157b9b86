"""SipDriver placing one meeting across two media worker processes (issue 16), with sipp peers:
the second worker is linked to the first over the node pipe's cascade orders, and its death
ends only its own legs."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest

from telemeeting.domain.model import EndReason
from telemeeting.telephony.driver import Progress
from telemeeting.telephony.orders import ConfigureMeeting
from telemeeting.telephony.sip.driver import SipDriver
from tests.sip.conftest import Route, order
from tests.sip.peers import ReportLog, Sipp, free_ports
from tests.sip.test_node import Settings

pytestmark = [pytest.mark.timeout(90), pytest.mark.sipp]


async def _until(
    check: Callable[[], bool], what: Callable[[], object], timeout: float = 10
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, what()
        await asyncio.sleep(0.05)


def _two_workers(one: Sipp, two: Sipp) -> tuple[SipDriver, ReportLog]:
    """A driver with two workers of one leg each, routing number 1 to `one` and 2 to `two`."""
    (rtp,) = free_ports(1, span=40)
    routes = [Route("^1$", f"sip:1@{one.uri_host}"), Route("^2$", f"sip:2@{two.uri_host}")]
    driver = SipDriver(
        Settings(rtp, rtp + 39, routes), nodes=2, max_legs_per_node=1, stats_seconds=0.1
    )
    reports = ReportLog()
    driver.attach(reports)
    return driver, reports


async def test_a_full_worker_extends_the_meeting_and_a_dead_worker_ends_only_its_legs(workdir):
    first = Sipp(workdir, "answer.xml", "-rtp_echo")
    second = Sipp(workdir, "answer.xml", "-rtp_echo")
    driver, reports = _two_workers(first, second)
    try:
        await driver.dial(order("1", leg="a", meeting="m"))
        await driver.dial(order("2", leg="b", meeting="m"))
        assert driver.nodes_of("m") == [0, 1]  # the home was full: b is dialled from worker 1
        assert (driver.node_of_leg("m", "a"), driver.node_of_leg("m", "b")) == (0, 1)
        await reports.wait_for("a", Progress.ANSWERED, timeout=20)
        await reports.wait_for("b", Progress.ANSWERED, timeout=20)
        # One link each way, with audio flowing (sipp echoes each leg's mix back).
        await _until(
            lambda: [s.get("cascade_links") for s in driver.node_stats()] == [1, 1],
            driver.node_stats,
        )
        await driver.set_muted("m", "b", True)  # to worker 1; worker 0 does not know b

        pid = driver.node_pids[1]
        assert pid is not None
        os.kill(pid, 9)
        ended = await reports.wait_for("b", Progress.ENDED, timeout=10)
        assert ended.reason is EndReason.FAILED
        # Its call is released too: worker 0 sent b's peer the BYE of the dialog worker 1 had.
        assert await second.wait() == 0, second.log()
        assert driver.nodes_of("m") == [0]
        # The survivor closed its link to the dead worker; a's call goes on.
        await _until(lambda: driver.node_stats()[0].get("cascade_links") == 0, driver.node_stats)
        await asyncio.sleep(0.5)
        assert driver.node_stats()[0].get("legs") == 1
        # The dead worker's last figures are gone from /metrics; it is counted down instead.
        assert driver.node_stats()[1] == {}
        stats = driver.media_stats()
        assert (stats["legs"], stats["cascade_links"], stats["workers_down"]) == (1, 0, 1)
        assert reports.of("b") == [
            (Progress.RINGING, None),
            (Progress.ANSWERED, None),
            (Progress.ENDED, EndReason.FAILED),
        ]
        assert Progress.ENDED not in [progress for progress, _ in reports.of("a")]
        # A new leg of the meeting goes to the surviving worker (over the limit, not refused).
        await driver.dial(order("9", leg="c", meeting="m"))
        assert driver.node_of_leg("m", "c") == 0  # (no route: it ends at once, but there)
        assert (await reports.wait_for("c", Progress.ENDED)).reason is EndReason.NOT_FOUND
        await driver.hang_up("m", "a")
        assert await first.wait() == 0, first.log()
        # With every worker gone a dial is reported failed, not sent into a dead pipe.
        pid = driver.node_pids[0]
        assert pid is not None
        os.kill(pid, 9)
        await _until(lambda: driver.alive_nodes == [], lambda: driver.alive_nodes)
        await driver.dial(order("1", leg="d", meeting="m2"))
        assert (await reports.wait_for("d", Progress.ENDED)).reason is EndReason.FAILED
    finally:
        await driver.close()
        second.stop()


async def test_the_creator_leaving_from_another_worker_ends_the_meeting_everywhere(workdir):
    """endoncreatorleave with the creator on worker 1: worker 0's member ends too (会议结束), and
    the emptied meeting is ended on both workers (links closed)."""
    member = Sipp(workdir, "answer.xml", "-rtp_echo")
    creator = Sipp(workdir, "remote_bye.xml")  # answers, then hangs up by itself
    driver, reports = _two_workers(member, creator)
    try:
        configure = ConfigureMeeting("m", "production", creator_leg="c", end_on_creator_leave=True)
        await driver.media(configure)
        await driver.dial(order("1", leg="a", meeting="m"))
        await reports.wait_for("a", Progress.ANSWERED, timeout=20)
        await driver.dial(order("2", leg="c", meeting="m"))
        assert (driver.node_of_leg("m", "a"), driver.node_of_leg("m", "c")) == (0, 1)
        assert (await reports.wait_for("c", Progress.ENDED, timeout=20)).reason is EndReason.NORMAL
        ended = await reports.wait_for("a", Progress.ENDED, timeout=10)
        assert ended.reason is EndReason.MEETING_ENDED
        assert await member.wait() == 0, member.log()
        assert await creator.wait() == 0, creator.log()
        assert driver.nodes_of("m") == []
        await _until(
            lambda: [s.get("cascade_links") for s in driver.node_stats()] == [0, 0],
            driver.node_stats,
        )
    finally:
        await driver.close()
        member.stop()
        creator.stop()
