"""Dial-in logic without I/O (issue 15): the IVR state machine key by key, the key receivers
(RFC 4733 and SIP INFO), the trusted-source check and the dial-in configuration."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from telemeeting.config import SipSettings
from telemeeting.telephony.ivr.digits import DigitReceiver, info_digit
from telemeeting.telephony.ivr.machine import Check, Ivr, Join, Play, Prompt, Verdict
from telemeeting.telephony.media.dtmf import event_payload
from telemeeting.telephony.sip.ua import UserAgent, trusted_networks


def keys(ivr: Ivr, text: str) -> list:
    actions: list = []
    for key in text:
        actions += ivr.digit(key)
    return actions


def test_meeting_number_then_pin_then_check() -> None:
    ivr = Ivr()
    assert ivr.start() == [Play(Prompt.ENTER_MEETING)]
    assert keys(ivr, "12") == []
    assert keys(ivr, "3#") == [Play(Prompt.ENTER_PIN)]
    assert keys(ivr, "4321#") == [Check("123", "4321")]
    assert keys(ivr, "9#") == []  # checking: keys are ignored
    assert ivr.checked(Verdict.ADMITTED) == [Join()]
    assert ivr.finished


def test_star_restarts_the_entry_and_a_stray_hash_is_ignored() -> None:
    ivr = Ivr()
    ivr.start()
    assert keys(ivr, "#") == []
    assert keys(ivr, "99*123#") == [Play(Prompt.ENTER_PIN)]
    assert keys(ivr, "11*4321#") == [Check("123", "4321")]


def test_a_bound_number_asks_only_the_pin() -> None:
    ivr = Ivr(bound_meid="777")
    assert ivr.start() == [Play(Prompt.ENTER_PIN)]
    assert keys(ivr, "1234#") == [Check("777", "1234")]
    assert ivr.checked(Verdict.WRONG) == [Play(Prompt.WRONG), Play(Prompt.ENTER_PIN)]


def test_three_wrong_tries_end_the_call() -> None:
    ivr = Ivr()
    ivr.start()
    for attempt in range(3):
        keys(ivr, "123#")
        assert keys(ivr, "1111#") == [Check("123", "1111")]
        actions = ivr.checked(Verdict.WRONG)
        if attempt < 2:
            assert actions == [Play(Prompt.WRONG), Play(Prompt.ENTER_MEETING)]
    assert actions == [Play(Prompt.TOO_MANY_TRIES, then_hang_up=True)]
    assert ivr.finished and ivr.tries == 3


def test_silence_repeats_once_then_hangs_up_and_a_key_resets_it() -> None:
    ivr = Ivr()
    ivr.start()
    assert ivr.silence() == [Play(Prompt.ENTER_MEETING)]
    keys(ivr, "1")  # a key: the count starts again
    assert ivr.silence() == [Play(Prompt.ENTER_MEETING)]
    assert ivr.silence() == [Play(Prompt.GOODBYE, then_hang_up=True)]
    assert ivr.finished
    assert ivr.silence() == []


@pytest.mark.parametrize(
    ("verdict", "prompt"),
    [
        (Verdict.NOT_STARTED, Prompt.NOT_STARTED),
        (Verdict.FULL, Prompt.MEETING_FULL),
        (Verdict.UNAVAILABLE, Prompt.UNAVAILABLE),
    ],
)
def test_final_verdicts_say_why_and_release(verdict: Verdict, prompt: Prompt) -> None:
    ivr = Ivr()
    ivr.start()
    keys(ivr, "1#2222#")
    assert ivr.checked(verdict) == [Play(prompt, then_hang_up=True)]
    assert ivr.finished


def test_an_overlong_entry_is_wrong_without_asking() -> None:
    ivr = Ivr()
    ivr.start()
    keys(ivr, "1#")
    assert keys(ivr, "9" * 40 + "#") == [Play(Prompt.WRONG), Play(Prompt.ENTER_MEETING)]


def test_rfc4733_key_is_reported_once_per_event() -> None:
    receiver = DigitReceiver()
    assert receiver.event(1000, event_payload(5, 160)) == "5"
    assert receiver.event(1000, event_payload(5, 320)) is None
    assert receiver.event(1000, event_payload(5, 480, end=True)) is None
    assert receiver.event(2000, event_payload(11, 480, end=True)) == "#"  # first packet lost
    assert receiver.event(3000, event_payload(10, 160)) == "*"
    assert receiver.event(4000, event_payload(16, 160)) is None  # flash: not a key
    assert receiver.event(5000, b"\x01") is None


def test_sip_info_keys() -> None:
    relay = b"Signal=7\r\nDuration=160\r\n"
    assert info_digit("application/dtmf-relay", relay) == "7"
    assert info_digit("Application/DTMF-Relay; charset=x", b"Signal= #\r\n") == "#"
    assert info_digit("application/dtmf", b"*") == "*"
    assert info_digit("text/plain", relay) is None
    assert info_digit("application/dtmf-relay", b"Signal=77\r\n") is None


def test_trusted_sources() -> None:
    ua = UserAgent("127.0.0.1", 0, trusted=trusted_networks(["10.0.0.0/8", "192.0.2.7"]))
    assert ua.is_trusted("10.1.2.3") and ua.is_trusted("192.0.2.7")
    assert not ua.is_trusted("192.0.2.8") and not ua.is_trusted("not-an-ip")
    assert not UserAgent("127.0.0.1", 0).is_trusted("127.0.0.1")  # none configured: nobody


def test_dialin_settings_are_validated_whole() -> None:
    settings = SipSettings(
        dialin=[{"number": "4000"}, {"number": "+864001", "meid": "123"}],
        trusted_sources=["127.0.0.1", " 10.0.0.0/8 "],
    )
    assert settings.dialin[1].meid == "123" and settings.trusted_sources[1] == "10.0.0.0/8"
    for bad in (
        {"dialin": [{"number": "40\n00"}]},
        {"dialin": [{"number": ""}]},
        {"dialin": [{"number": "4000", "meid": "12a"}]},
        {"dialin": [{"number": "4000"}, {"number": "4000"}]},
        {"trusted_sources": ["10.0.0.0/33"]},
        {"trusted_sources": ["host.example"]},
        {"trusted_sources": ["127.0.0.1\x00"]},
        {"ivr_language": "fr"},
    ):
        with pytest.raises(ValidationError):
            SipSettings(**bad)
