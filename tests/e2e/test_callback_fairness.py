"""Fair delivery (hardening issue, item 5): a receiver that never answers holds up only its own app.

Found before: with one app's receiver hanging on ~110 pending pushes, another app's first push
took 5 s (p50) instead of 0.02 s, because the dispatcher shared one pool of 64 pushes in flight.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from telemeeting.callbacks.dispatcher import PER_APP_IN_FLIGHT
from tests.receiver import Received, Receiver
from tests.servers import Api, Server, start_server

BUSY = "0486"  # the simulated carrier answers numbers ending in 0486 busy
HUNG_PARTIES = 100  # one meeting: 100 legs, 300 pushes, 101 of them due at once
TIMEOUT = "10"  # the default delivery timeout: a hung push holds its slot this long


@pytest.fixture
def server(fresh_db: str, tmp_path: Path) -> Iterator[Server]:
    running = start_server(
        fresh_db, tmp_path, env={"TELEMEETING_CALLBACKS_TIMEOUT_SECONDS": TIMEOUT}
    )
    yield running
    running.stop()


def _api(server: Server, callback_url: str) -> Api:
    tenant = server.new_tenant()
    tenant.production_app = server.make_app(tenant.sid, "production", callback_url=callback_url)
    return Api(server, tenant)


def _busy(index: int) -> str:
    return f"1390{index:03d}{BUSY}"


def _settled(pushes: list[Received]) -> bool:
    return any(p.kind == "Call" for p in pushes)


def test_a_hanging_receiver_does_not_delay_another_apps_pushes(server: Server) -> None:
    hung = Receiver()
    receiver = Receiver()
    try:
        hung.mode, hung.hang_seconds = "hang", 60.0  # never answers within the timeout
        stuck = _api(server, hung.url)
        parties = [{"name": f"p{i}", "phone": _busy(i)} for i in range(HUNG_PARTIES)]
        meid = stuck.create_meeting(env="production", parties=parties)
        stuck.wait_for(  # every leg has ended: all 301 pushes are stored, 101 due at once
            meid,
            lambda m: all(p["state"] == "disconnect" for p in m["members"]),
            env="production",
            timeout=20,
        )
        deadline = time.monotonic() + 10
        while hung.attempts < PER_APP_IN_FLIGHT and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # every slot the stuck app may take is taken
        assert hung.attempts >= PER_APP_IN_FLIGHT, hung.attempts

        other = _api(server, receiver.url)
        started = time.time()
        other.create_meeting(env="production", parties=[{"name": "b", "phone": _busy(999)}])
        first = receiver.wait_for(lambda pushes: len(pushes) >= 1, timeout=10)[0]
        assert first.at - started < 1.0, first.at - started
        pushes = receiver.wait_for(_settled, timeout=10)
        assert max(p.at for p in pushes) - started < 2.0
        assert [p.body.get("state") for p in pushes if p.kind == "CallState"] == [
            "callout",
            "disconnect",
        ]
        # The stuck app never had more than its own bound on the wire, and got nothing through.
        assert hung.attempts <= PER_APP_IN_FLIGHT and hung.pushes() == []
    finally:
        receiver.stop()
        hung.stop()
