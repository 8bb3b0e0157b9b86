"""Speaker events: the detector on its own, then through a real server on the simulated carrier
(its parties talk synthetic voices with pauses)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from telemeeting.telephony.media.vad import SpeakerDetector
from tests.servers import Api, Server, start_server


def test_attack_hangover_and_at_most_two_reports_a_second() -> None:
    detector = SpeakerDetector(threshold=400, attack=3, hangover=20, interval=25)
    reports: list[tuple[int, tuple[str, ...]]] = []

    def run(frames: int, levels: dict[str, float], start: int) -> int:
        for n in range(frames):
            found = detector.update(levels)
            if found is not None:
                reports.append((start + n, found))
        return start + frames

    at = run(2, {"a": 5000, "b": 0}, 0)  # a click: shorter than the attack
    at = run(30, {"a": 0, "b": 0}, at)
    assert reports == []
    at = run(10, {"a": 5000, "b": 0}, at)  # a talks
    assert reports[-1][1] == ("a",)
    at = run(10, {"a": 0, "b": 0}, at)  # a pause shorter than the hangover: still talking
    assert len(reports) == 1
    at = run(5, {"a": 5000, "b": 5000}, at)  # b joins in, within 0.5 s of the last report
    assert len(reports) == 1
    at = run(30, {"a": 5000, "b": 5000}, at)
    assert reports[-1][1] == ("a", "b")
    assert reports[-1][0] - reports[-2][0] >= 25
    at = run(60, {"b": 5000}, at)  # a leaves the room
    assert reports[-1][1] == ("b",)
    firsts = [frame for frame, _ in reports]
    assert all(later - earlier >= 25 for earlier, later in itertools.pairwise(firsts))


@pytest.fixture
def served(fresh_db: str, tmp_path: Path) -> Iterator[tuple[Server, Api]]:
    server = start_server(fresh_db, tmp_path)
    try:
        yield server, Api(server, server.new_tenant())
    finally:
        server.stop()


@pytest.mark.timeout(90)
def test_speaker_events_on_the_simulated_carrier(served: tuple[Server, Api]) -> None:
    _, api = served
    phones = ["13800000001", "13800000002", "13800000003"]
    meid = api.create_meeting(speakerevents="1", parties=[{"phone": p} for p in phones])
    api.wait_for(meid, lambda m: all(x["state"] == "answer" for x in m["members"]))
    meeting = api.query(meid)
    assert all(isinstance(m["speaking"], bool) for m in meeting["members"])

    def speaker_events() -> list[dict[str, Any]]:
        events = api.post(
            {"action": "queryMeetingEvents", "confid": meid, "limit": 1000},
            func_url="MeetingQuery.wx",
        ).body["events"]
        return [
            e["body"]
            for e in events
            if e["type"] == "MeetingState" and e["body"]["state"] == "speakers"
        ]

    started = time.monotonic()
    deadline = started + 20
    while len(speaker_events()) < 4 and time.monotonic() < deadline:
        time.sleep(0.5)
    found = speaker_events()
    assert len(found) >= 4, found
    named = {phone for event in found for phone in event["speakers"]}
    assert named and named <= set(phones), found
    assert len(named) >= 2  # distinct voices with their own pauses
    assert len(found) <= 2 * (time.monotonic() - started + 2)  # at most 2 a second
    assert all(set(event) >= {"meid", "state", "timestamp", "speakers"} for event in found)
    # A meeting without speaker events says nothing about speaking.
    plain = api.create_meeting(parties=[{"phone": phones[0]}])
    assert "speaking" not in api.query(plain)["members"][0]
