"""The SIP driver against sipp scenarios: signalling paths, each checked from both sides
(our LegReports, and sipp's exit status, which is 0 only if we followed its script)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from telemeeting.domain.model import EndReason
from telemeeting.telephony.driver import Progress
from tests.sip.conftest import Route, order
from tests.sip.peers import Sipp

pytestmark = [pytest.mark.timeout(60), pytest.mark.sipp]


def route_to(sipp: Sipp, **credentials: str) -> list[Route]:
    return [Route(r"^\d+$", f"sip:{{number}}@{sipp.uri_host}", **credentials)]


async def test_answered_call_exchanges_rtp_and_hangs_up_with_bye(workdir: Path, make_engine):
    sipp = Sipp(workdir, "answer.xml", "-rtp_echo")
    engine, reports = await make_engine(route_to(sipp))
    await engine.dial(order("1001"))
    await reports.wait_for("leg1", Progress.ANSWERED)
    await asyncio.sleep(0.5)
    stats = engine.leg_stats("leg1")
    assert stats is not None and stats["tx_packets"] > 10 and stats["rx_packets"] > 5
    await engine.hang_up("m1", "leg1")
    assert await sipp.wait() == 0, sipp.log()
    assert reports.of("leg1") == [(Progress.RINGING, None), (Progress.ANSWERED, None)]


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        ("486", "Busy Here", EndReason.BUSY),
        ("600", "Busy Everywhere", EndReason.BUSY),
        ("603", "Decline", EndReason.DECLINED),
        ("404", "Not Found", EndReason.NOT_FOUND),
        ("480", "Temporarily Unavailable", EndReason.NO_ANSWER),
        ("503", "Service Unavailable", EndReason.FAILED),
    ],
)
async def test_refusals_map_to_end_reasons(workdir, make_engine, status, reason, expected):
    sipp = Sipp(workdir, "reject.xml", status=status, reason=reason)
    engine, reports = await make_engine(route_to(sipp))
    await engine.dial(order("1002"))
    ended = await reports.wait_for("leg1", Progress.ENDED)
    assert ended.reason is expected
    assert await sipp.wait() == 0, sipp.log()  # our ACK of the refusal arrived
    assert engine.active_legs() == 0


async def test_digest_401_accepted(workdir, make_engine):
    sipp = Sipp(workdir, "auth.xml")
    engine, reports = await make_engine(route_to(sipp, username="alice", password="secret"))
    await engine.dial(order("1003"))
    await reports.wait_for("leg1", Progress.ANSWERED)
    await engine.hang_up("m1", "leg1")
    assert await sipp.wait() == 0, sipp.log()


async def test_digest_401_wrong_password_fails(workdir, make_engine):
    sipp = Sipp(workdir, "auth.xml")
    engine, reports = await make_engine(route_to(sipp, username="alice", password="wrong"))
    await engine.dial(order("1004"))
    ended = await reports.wait_for("leg1", Progress.ENDED)
    assert ended.reason is EndReason.FAILED
    assert [p for p, _ in reports.of("leg1")] == [Progress.ENDED]
    assert await sipp.wait() == 0, sipp.log()


async def test_digest_401_without_credentials_fails(workdir, make_engine):
    sipp = Sipp(workdir, "auth.xml")
    engine, reports = await make_engine(route_to(sipp))
    await engine.dial(order("1005"))
    ended = await reports.wait_for("leg1", Progress.ENDED)
    assert ended.reason is EndReason.FAILED
    sipp.stop()


async def test_proxy_407_and_record_route(workdir, make_engine):
    sipp = Sipp(workdir, "proxy_auth.xml")
    engine, reports = await make_engine(route_to(sipp, username="alice", password="secret"))
    await engine.dial(order("1006"))
    await reports.wait_for("leg1", Progress.ANSWERED)
    stats = engine.leg_stats("leg1")
    assert stats is not None and stats["payload_type"] == 8  # PCMA, as answered
    await engine.hang_up("m1", "leg1")
    assert await sipp.wait() == 0, sipp.log()  # Proxy-Authorization matched; BYE had a Route
    assert "Route: <sip:" in sipp.log().split("BYE sip:")[-1]


async def test_early_media_on_183(workdir, make_engine):
    sipp = Sipp(workdir, "early_media.xml")
    engine, reports = await make_engine(route_to(sipp))
    await engine.dial(order("1007"))
    await reports.wait_for("leg1", Progress.RINGING)
    await reports.wait_for("leg1", Progress.ANSWERED)
    stats = engine.leg_stats("leg1")
    assert stats is not None and stats["rx_before_answer"] > 20  # ~1 s of PCMA before the 200
    await engine.hang_up("m1", "leg1")
    assert await sipp.wait() == 0, sipp.log()


async def test_ring_timeout_cancels(workdir, make_engine):
    sipp = Sipp(workdir, "no_answer.xml")
    engine, reports = await make_engine(route_to(sipp), ring_timeout_seconds=1.0)
    await engine.dial(order("1008"))
    await reports.wait_for("leg1", Progress.RINGING)
    ended = await reports.wait_for("leg1", Progress.ENDED, timeout=5)
    assert ended.reason is EndReason.NO_ANSWER
    assert await sipp.wait() == 0, sipp.log()  # CANCEL sent, 487 ACKed
    assert "CANCEL sip:" in sipp.log()


async def test_hang_up_while_ringing_cancels_without_report(workdir, make_engine):
    sipp = Sipp(workdir, "no_answer.xml")
    engine, reports = await make_engine(route_to(sipp))
    await engine.dial(order("1009"))
    await reports.wait_for("leg1", Progress.RINGING)
    await engine.end_meeting("m1")
    assert await sipp.wait() == 0, sipp.log()
    await asyncio.sleep(0.2)
    assert reports.of("leg1") == [(Progress.RINGING, None)]


async def test_remote_bye_after_session_refreshes(workdir, make_engine):
    sipp = Sipp(workdir, "remote_bye.xml")
    engine, reports = await make_engine(route_to(sipp))
    await engine.dial(order("1010"))
    ended = await reports.wait_for("leg1", Progress.ENDED)
    assert ended.reason is EndReason.NORMAL
    assert await sipp.wait() == 0, sipp.log()  # OPTIONS, UPDATE and re-INVITE got 200
    assert [p for p, _ in reports.of("leg1")] == [
        Progress.RINGING,
        Progress.ANSWERED,
        Progress.ENDED,
    ]


async def test_no_rtp_hangs_up_with_failed(workdir, make_engine):
    sipp = Sipp(workdir, "answer.xml")  # answers but sends no RTP
    engine, reports = await make_engine(route_to(sipp), rtp_timeout_seconds=1.0)
    await engine.dial(order("1011"))
    await reports.wait_for("leg1", Progress.ANSWERED)
    ended = await reports.wait_for("leg1", Progress.ENDED, timeout=5)
    assert ended.reason is EndReason.FAILED
    assert await sipp.wait() == 0, sipp.log()  # and it got our BYE


async def test_unreachable_trunk_fails(make_engine):
    engine, reports = await make_engine(
        [Route(".*", "sip:{number}@127.0.0.1:9")], t1=0.02
    )  # Timer B = 64·T1 = 1.28 s
    await engine.dial(order("1012"))
    ended = await reports.wait_for("leg1", Progress.ENDED, timeout=8)
    assert ended.reason is EndReason.FAILED


async def test_number_without_route_is_not_found(make_engine):
    engine, reports = await make_engine([Route(r"^1\d{10}$", "sip:{number}@127.0.0.1:9")])
    await engine.dial(order("999"))
    ended = await reports.wait_for("leg1", Progress.ENDED)
    assert ended.reason is EndReason.NOT_FOUND
