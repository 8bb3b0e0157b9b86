"""The outbox against real SQLite and PostgreSQL: fair claims (per app, per receiver host, round
robin), batched outcomes, and the per-leg order and attempt guards they must keep."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from telemeeting.domain.model import Meeting
from telemeeting.store.outbox import DEAD, DELIVERED, PENDING, Delivery, Outcome, host_key
from telemeeting.store.records import StoredEvent
from telemeeting.store.unit_of_work import Database
from tests.servers import new_app

LEASE = 30.0


async def _app(db: Database, callback_url: str) -> str:
    return (await new_app(db, callback_url=callback_url)).appid


_meids = iter(range(100000, 999999))


async def _seed(
    db: Database, appid: str, legs: int, per_leg: int = 1, age: float = 0.0
) -> list[str]:
    """One meeting of `appid` with `legs` legs of `per_leg` pending events each, due `age`
    seconds ago; the event ids, leg by leg in seq order."""
    meeting = Meeting.open(
        app_id=appid, meid=str(next(_meids)), now=time.time(), max_members=1000, max_duration=3600
    )
    created = time.time() - age
    ids = [f"{meeting.id[-12:]}-{leg}-{n}" for leg in range(legs) for n in range(per_leg)]
    async with db.unit_of_work() as uow:
        await uow.meetings.add(meeting)
        await uow.events.add_all(
            [
                StoredEvent(
                    id=event_id,
                    meeting_id=meeting.id,
                    seq=seq,
                    leg_id=f"{meeting.id[-12:]}-{event_id.split('-')[1]}",
                    app_id=appid,
                    kind="CallState",
                    body="{}",
                    created_at=created + seq * 1e-6,
                    delivery="pending",
                    attempts=0,
                )
                for seq, event_id in enumerate(ids, start=1)
            ],
            pushed=True,
        )
        uow.meetings.reserve_seqs(meeting.id, len(ids))
        await uow.meetings.save(meeting)
    return ids


async def _claim(db: Database, limit: int, **fair: object) -> list[Delivery]:
    async with db.unit_of_work() as uow:
        return await uow.outbox.claim(time.time(), LEASE, limit, **fair)  # type: ignore[arg-type]


async def _settle(db: Database, outcomes: list[Outcome]) -> None:
    async with db.unit_of_work() as uow:
        await uow.outbox.settle(outcomes)


async def _states(db: Database, appid: str) -> dict[str, tuple[str, int]]:
    async with db.reader() as uow:
        return {e.id: (e.delivery, e.attempts) for e in await uow.outbox.list(appid, None)}


async def test_apps_take_turns_within_their_bound(db: Database) -> None:
    big = await _app(db, "http://127.0.0.1:9001/cb")
    small = await _app(db, "http://127.0.0.1:9002/cb")
    await _seed(db, big, legs=50, age=60)  # older: first in line
    await _seed(db, small, legs=2)
    claimed = await _claim(db, 20, per_app=8, per_host=100)
    assert Counter(d.app_id for d in claimed) == {big: 8, small: 2}
    # round robin: each app's first before any app's second
    assert {d.app_id for d in claimed[:2]} == {big, small}
    assert all(d.attempt == 1 for d in claimed)


async def test_apps_at_their_bound_are_skipped_before_the_scan(db: Database) -> None:
    stuck = await _app(db, "http://127.0.0.1:9001/cb")
    other = await _app(db, "http://127.0.0.1:9002/cb")
    await _seed(db, stuck, legs=300, age=60)
    mine = await _seed(db, other, legs=1)
    claimed = await _claim(db, 10, per_app=8, per_host=100, app_rooms={stuck: 0}, scan=16)
    assert [d.event_id for d in claimed] == mine
    claimed = await _claim(db, 10, per_app=8, per_host=100, app_rooms={stuck: 3})
    assert Counter(d.app_id for d in claimed) == {stuck: 3}


async def test_apps_on_one_receiver_host_share_its_bound(db: Database) -> None:
    first = await _app(db, "http://hooks.example:8080/a/cb")
    second = await _app(db, "http://hooks.example:8080/b/cb?x=1")
    elsewhere = await _app(db, "https://other.example/cb")
    assert host_key("http://hooks.example:8080/a/cb") == "http://hooks.example:8080"
    for appid in (first, second, elsewhere):
        await _seed(db, appid, legs=10)
    claimed = await _claim(db, 100, per_app=8, per_host=5)
    by_app = Counter(d.app_id for d in claimed)
    assert by_app[first] + by_app[second] == 5 and by_app[elsewhere] == 5
    assert by_app[first] >= 2 and by_app[second] >= 2  # the host's room is shared in turns
    full = {"http://hooks.example:8080": 0, "https://other.example": 1}
    claimed = await _claim(db, 100, per_app=8, per_host=5, host_rooms=full)
    assert Counter(d.app_id for d in claimed) == {elsewhere: 1}


async def test_batched_outcomes_keep_the_leg_order_and_the_attempt_guard(db: Database) -> None:
    appid = await _app(db, "http://127.0.0.1:9001/cb")
    ids = await _seed(db, appid, legs=3, per_leg=2)  # legs 0, 1, 2: two events each
    first = {d.event_id: d for d in await _claim(db, 10)}
    assert sorted(first) == [ids[0], ids[2], ids[4]]  # only the first of each leg
    now = time.time()
    await _settle(
        db,
        [
            Outcome(first[ids[0]], DELIVERED, now),
            Outcome(first[ids[2]], PENDING, now - 1, "HTTP 500"),  # due again at once
            Outcome(first[ids[4]], DEAD, now, "gave up"),
        ],
    )
    states = await _states(db, appid)
    assert states[ids[0]] == (DELIVERED, 1) and states[ids[4]] == (DEAD, 1)
    assert states[ids[2]] == (PENDING, 1)
    again = {d.event_id: d for d in await _claim(db, 10)}
    # leg 0 moves on; leg 1 retries its first; leg 2's first is dead, so its second is free
    assert sorted(again) == sorted([ids[1], ids[2], ids[5]])
    assert again[ids[2]].attempt == 2
    # a late outcome of the superseded first attempt changes nothing; the current one counts
    await _settle(
        db,
        [
            Outcome(first[ids[2]], DEAD, now, "late"),
            Outcome(again[ids[2]], DELIVERED, now),
            Outcome(again[ids[1]], DELIVERED, now),
            Outcome(again[ids[5]], DELIVERED, now),
        ],
    )
    states = await _states(db, appid)
    assert states[ids[2]] == (DELIVERED, 2)
    assert [states[i][0] for i in ids] == [DELIVERED] * 3 + [PENDING, DEAD, DELIVERED]
    assert [d.event_id for d in await _claim(db, 10)] == [ids[3]]  # leg 1's second, at last


async def test_a_leased_event_is_not_claimed_twice(db: Database) -> None:
    appid = await _app(db, "http://127.0.0.1:9001/cb")
    await _seed(db, appid, legs=40)
    first = await _claim(db, 25, per_app=25)
    second = await _claim(db, 25, per_app=25)
    assert len(first) == 25 and len(second) == 15
    assert not {d.event_id for d in first} & {d.event_id for d in second}


@pytest.mark.postgres
async def test_concurrent_claims_skip_each_others_rows(pg_db: Database) -> None:
    """Several dispatchers on PostgreSQL: a claim passes over rows another one is leasing
    (PostgreSQL only: SQLite serialises claims with its one writer, so there is no overlap)."""
    db = pg_db
    appid = await _app(db, "http://127.0.0.1:9001/cb")
    await _seed(db, appid, legs=20)
    async with db.unit_of_work() as uow:  # still open: its rows stay locked
        first = await uow.outbox.claim(time.time(), LEASE, 10, per_app=10)
        second = await _claim(db, 20, per_app=20)
    assert len(first) == 10 and len(second) == 10
    assert not {d.event_id for d in first} & {d.event_id for d in second}
