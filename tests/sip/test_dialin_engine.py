"""Dial-in on the SIP engine itself (issue 15), with a test admitter in place of the service:
a baresip phone calls in and keys digits as RFC 4733 events; silence, a full or not-started
meeting release it; a cancel before answer leaves nothing behind; an untrusted source gets 403;
a joined caller hanging up is reported. (Three wrong PINs, mixing, mute and kick of a caller who
dialled in are tested through the whole product: test_dialin.py, test_dialin_kamailio.py.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from telemeeting.domain.model import EndReason
from telemeeting.telephony.dialin import Admission, AdmitRequest
from telemeeting.telephony.driver import Progress
from telemeeting.telephony.ivr.machine import Verdict
from tests.sip.peers import HOST, Baresip, key_in, ready_all, tone_phones

pytestmark = [pytest.mark.timeout(90), pytest.mark.baresip]

TONES = {"alice": 440.0, "bob": 660.0, "dave": 1000.0}
DIALIN = "4000"


class Admitter:
    """Meeting 123 with PIN 4321 admits as leg `in1` of meeting m1; anything else is wrong."""

    def __init__(self) -> None:
        self.asked: list[AdmitRequest] = []

    async def __call__(self, request: AdmitRequest) -> Admission:
        self.asked.append(request)
        if (request.meid, request.pin) == ("123", "4321"):
            return Admission(Verdict.ADMITTED, "m1", f"in{len(self.asked)}")
        return Admission(Verdict.WRONG)


async def started(workdir: Path, names: list[str]) -> list[Baresip]:
    return await ready_all(tone_phones(workdir, {name: TONES[name] for name in names}))


async def dialin_engine(make_engine, routes, trusted=(HOST,), **options):
    engine, reports = await make_engine(
        routes,
        dialin=[{"number": DIALIN}],
        trusted_sources=list(trusted),
        dialin_answer_seconds=0.05,
        **options,
    )
    admitter = Admitter()
    engine.set_admitter(admitter)
    return engine, reports, admitter


async def test_untrusted_source_gets_403(workdir, make_engine):
    (dave,) = await started(workdir, ["dave"])
    try:
        engine, _, admitter = await dialin_engine(make_engine, [], trusted=["10.0.0.0/8"])
        await dave.command("dial", f"sip:{DIALIN}@{HOST}:{engine.sip_port}")
        closed = await dave.wait_event("CALL_CLOSED")
    finally:
        await dave.stop()
    assert "403" in str(closed[0]), closed
    assert admitter.asked == [] and engine.active_legs() == 0


async def test_caller_hanging_up_after_joining_is_reported(workdir, make_engine):
    (dave,) = await started(workdir, ["dave"])
    try:
        engine, reports, _ = await dialin_engine(make_engine, [])
        await dave.command("dial", f"sip:{DIALIN}@{HOST}:{engine.sip_port}")
        await dave.wait_event("CALL_ESTABLISHED")
        await key_in(dave, "123#4321#")
        await reports.wait_for("in1", Progress.ANSWERED)
        await dave.command("hangup")
        await reports.wait_for("in1", Progress.ENDED)
    finally:
        await dave.stop()
    assert reports.of("in1") == [(Progress.ANSWERED, None), (Progress.ENDED, EndReason.NORMAL)]


class Verdicts(Admitter):
    """Answers every check with one verdict."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__()
        self.verdict = verdict

    async def __call__(self, request: AdmitRequest) -> Admission:
        self.asked.append(request)
        return Admission(self.verdict)


async def test_caller_cancelling_before_answer(workdir, make_engine):
    (dave,) = await started(workdir, ["dave"])
    try:
        engine, reports, admitter = await dialin_engine(make_engine, [])
        engine.dialin_answer_seconds = 5.0  # ring long enough to cancel
        await dave.command("dial", f"sip:{DIALIN}@{HOST}:{engine.sip_port}")
        await dave.wait_event("CALL_RINGING")
        await dave.command("hangup")
        closed = await dave.wait_event("CALL_CLOSED")
        await asyncio.sleep(0.3)
        assert not engine._inbound, "the caller's setup is still running"
    finally:
        await dave.stop()
    assert admitter.asked == [] and reports.reports == [], closed


async def test_silence_repeats_the_prompt_then_hangs_up(workdir, make_engine):
    (dave,) = await started(workdir, ["dave"])
    try:
        engine, reports, admitter = await dialin_engine(
            make_engine, [], ivr_silence_seconds=1.0
        )
        await dave.command("dial", f"sip:{DIALIN}@{HOST}:{engine.sip_port}")
        await dave.wait_event("CALL_ESTABLISHED")
        started_at = asyncio.get_running_loop().time()
        await dave.wait_event("CALL_CLOSED", timeout=15)
        waited = asyncio.get_running_loop().time() - started_at
    finally:
        await dave.stop()
    # three prompts of 0.5 s (no espeak-ng prompts given) and two silences of 1 s
    assert 2.0 <= waited <= 8.0, waited
    assert admitter.asked == [] and reports.reports == []


@pytest.mark.parametrize("verdict", [Verdict.FULL, Verdict.NOT_STARTED])
async def test_full_or_not_started_meeting_releases_the_caller(workdir, make_engine, verdict):
    (dave,) = await started(workdir, ["dave"])
    try:
        engine, reports, _ = await dialin_engine(make_engine, [])
        admitter = Verdicts(verdict)
        engine.set_admitter(admitter)
        await dave.command("dial", f"sip:{DIALIN}@{HOST}:{engine.sip_port}")
        await dave.wait_event("CALL_ESTABLISHED")
        await key_in(dave, "123#4321#")
        await dave.wait_event("CALL_CLOSED", timeout=10)
    finally:
        await dave.stop()
    assert len(admitter.asked) == 1  # said once, then released: no second try
    assert reports.reports == [] and engine.active_legs() == 0
