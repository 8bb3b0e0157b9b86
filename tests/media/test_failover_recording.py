"""A recorded meeting survives its media node (issue 14): two `telemeeting serve` processes on
one PostgreSQL database and one recordings directory, the simulated carrier's parties talking.
The owner is killed mid-meeting; the survivor takes the meeting over and records on into a new
segment. queryMeeting lists both recordings, the dead node's WAV stays playable for purge, and
each CDR links to the segment that heard its call."""

from __future__ import annotations

import os
import signal
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.e2e.test_cluster import CLUSTER, _owner_and_other
from tests.media.test_recording_api import _decode
from tests.servers import Api, create_pg_database, drop_pg_database, start_server

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

BEFORE, AFTER = "13800000001", "13800000003"


@pytest.fixture
def pg_db() -> Iterator[str]:
    url = create_pg_database()
    yield url
    drop_pg_database(url)


def _recording_id(url: str) -> str:
    return url.split("/recordings/")[1].split(".mp3")[0]


def _cdr_links(api: Api, meid: str) -> dict[str, str]:
    reply = api.post({"action": "queryMeetingEvents", "confid": meid}, func_url="MeetingQuery.wx")
    cdrs = [e["body"]["cdr"][0] for e in reply.body["events"] if e["type"] == "Call"]
    return {cdr["called"]: cdr["tapesurl"] for cdr in cdrs}


def test_recording_goes_on_in_a_new_segment_after_failover(pg_db: str, tmp_path: Path) -> None:
    shared = tmp_path / "recordings"
    env = {**CLUSTER, "TELEMEETING_RECORDINGS_DIRECTORY": str(shared)}
    servers = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        servers.append(start_server(pg_db, tmp_path / name, env))
    try:
        api = Api(servers[0], servers[0].new_tenant())
        meid = api.create_meeting(record="1", speakerevents="1", parties=[{"phone": BEFORE}])
        api.wait_for(meid, lambda m: m["members"][0]["state"] == "answer", timeout=20)
        owner, survivor = _owner_and_other(pg_db, servers)
        time.sleep(2.0)  # something to record on the first node
        os.kill(owner.process.pid, signal.SIGKILL)
        owner.process.wait(10)
        via = Api(survivor, api.tenant)

        def taken_over(meeting: dict[str, Any]) -> bool:
            return meeting["members"][0]["state"] == "disconnect" and (
                len(meeting.get("recordings", [])) == 2
            )

        meeting = via.wait_for(meid, taken_over, timeout=30)
        assert taken_over(meeting), meeting
        assert meeting["state"] == "active"
        first, second = meeting["recordings"]
        assert first["end"] and not second["end"]  # the first stopped at the take-over

        invite = {"action": "inviteJoinMeeting", "confid": meid, "parties": [{"phone": AFTER}]}
        assert via.post(invite).code == "0"
        via.wait_for(meid, lambda m: m["members"][-1]["state"] == "answer", timeout=20)
        time.sleep(2.0)
        assert via.post({"action": "destroyMeeting", "confid": meid}).code == "0"
        meeting = via.wait_for(meid, lambda m: m["recordings"][1]["bytes"] > 0, timeout=20)
        first, second = meeting["recordings"]
        assert second["seconds"] >= 2

        # The new segment: an MP3 with the second party's voice in it.
        samples = _decode(httpx.get(second["url"], timeout=10).content, tmp_path)
        assert float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) > 300
        # The dead node's segment: its WAV is playable, left for `recordings purge`.
        with wave.open(str(shared / f"{_recording_id(first['url'])}.wav")) as dead:
            assert dead.getnframes() / dead.getframerate() >= 1.5

        links = _cdr_links(via, meid)
        assert all(link.count("/recordings/") == 1 for link in links.values()), links
        assert _recording_id(links[BEFORE]) == _recording_id(first["url"]), links
        assert _recording_id(links[AFTER]) == _recording_id(second["url"]), links
    finally:
        for server in servers:
            server.stop()
