"""The account/app cache reads each key once however many requests ask at the same moment, and
answers from a just-expired entry while one read refreshes it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

from telemeeting.service.directory import Directory


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


class SlowDatabase:
    """A fake at the store boundary: each read takes a moment and is counted."""

    def __init__(self) -> None:
        self.reads = 0
        self.name = "v1"

    async def _get(self, sid: str) -> Any:
        self.reads += 1
        await asyncio.sleep(0.01)
        return SimpleNamespace(sid=sid, name=self.name)

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[Any]:
        yield SimpleNamespace(accounts=SimpleNamespace(get=self._get))


async def test_a_cold_key_is_read_once_for_all_concurrent_requests() -> None:
    db, clock = SlowDatabase(), Clock()
    directory = Directory(db, ttl=1.0, clock=clock)  # type: ignore[arg-type]
    found = await asyncio.gather(*(directory.account("AC1") for _ in range(50)))
    assert db.reads == 1 and {a.name for a in found} == {"v1"}


async def test_an_expired_entry_answers_at_once_while_one_read_refreshes_it() -> None:
    db, clock = SlowDatabase(), Clock()
    directory = Directory(db, ttl=1.0, clock=clock)  # type: ignore[arg-type]
    await directory.account("AC1")
    db.name = "v2"  # an operator changed it
    clock.now += 1.5  # expired
    stale = await asyncio.gather(*(directory.account("AC1") for _ in range(50)))
    assert {a.name for a in stale} == {"v1"} and db.reads == 2  # one refresh, nobody waited
    await asyncio.sleep(0.05)
    assert (await directory.account("AC1")).name == "v2" and db.reads == 2


async def test_a_long_expired_entry_is_read_again_before_answering() -> None:
    db, clock = SlowDatabase(), Clock()
    directory = Directory(db, ttl=1.0, clock=clock)  # type: ignore[arg-type]
    await directory.account("AC1")
    db.name = "v2"
    clock.now += 60  # far beyond the stale window: the answer must be fresh
    assert (await directory.account("AC1")).name == "v2"
