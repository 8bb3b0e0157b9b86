"""The soak's workload (bench/soak.py) on its own: the mix keeps a pool of live meetings near
its target, acts only on members invited long enough ago to have answered, never invites past
a meeting's phone budget, and forgets a meeting whose last member it kicks (the server ends an
empty meeting, so acting on it again would be a -301 the soak itself caused)."""

from __future__ import annotations

import sys
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import soak
from telemeeting.client._calls import Calls, RetryPolicy
from telemeeting.wire import actions as wa


def _workload(meetings: int = 10) -> soak.Workload:
    calls = Calls(
        "a" * 32, "t" * 32, "b" * 32, "http://127.0.0.1:1", ZoneInfo("UTC"), RetryPolicy()
    )
    return soak.Workload(calls, meetings, seed=1)


def _run(workload: soak.Workload, steps: int, dt: float = 0.05) -> list[str]:
    """`steps` requests, each answered "0" at once (meeting ids counted up), `dt` apart."""
    actions, now, meid = [], 0.0, 0
    for _ in range(steps):
        planned = workload.next(now)
        if planned.action == wa.CREATE_MEETING:
            meid += 1
            planned.on_ok({"meid": str(meid)})
        else:
            planned.on_ok({})
        actions.append(planned.action)
        now += dt
    return actions


def test_the_mix_keeps_the_pool_near_its_target_and_sends_every_action() -> None:
    workload = _workload(meetings=10)
    actions = _run(workload, 5000)
    assert 5 <= len(workload.pool) <= 20
    assert set(actions) == set(soak.MIX)
    assert actions.count(wa.QUERY_MEETING) > actions.count(wa.KICK_MEMBER)


def test_no_meeting_gets_more_phones_than_its_budget() -> None:
    workload = _workload()
    _run(workload, 3000)
    assert all(len(m.phones) <= soak.PHONES_PER_MEETING for m in workload.pool)


def test_members_are_acted_on_only_once_answered_and_kicking_the_last_forgets_it() -> None:
    workload = _workload(meetings=1)
    created = workload.next(0.0)
    created.on_ok({"meid": "1"})
    meeting = workload.pool[0]
    meeting.phones.append(("13700000011", 0.0))
    assert workload._answered(1.0) is None  # still ringing, maybe
    found = workload._answered(soak.ANSWERED_AFTER_SECONDS)
    assert found == (meeting, "13700000011")
    kick = workload._on_member(wa.KICK_MEMBER, meeting, "13700000011")
    assert kick.call.params == {"confid": "1", "phone": "13700000011"}
    assert workload.pool == []
