"""Accounts and apps, read through a short-lived cache.

Every request needs its account and its app, and both change rarely; reading them from the
database each time cost two transactions per request. An operator's change (disable an account,
put an app online, change a whitelist) takes effect within `ttl` seconds plus one read.

Single flight: when an entry expires, one read refreshes it while the requests arriving
meanwhile are answered from the expired entry (for at most `STALE_FACTOR × ttl`); a key that is
not cached at all is read once however many requests ask for it at the same moment. Without
this, every request in flight at the moment of expiry read both rows again (10–14 % of the
server's time under load, docs/performance.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from telemeeting.store.records import Account, App
from telemeeting.store.unit_of_work import Database, UnitOfWork

T = TypeVar("T")

#: Seconds an account or app is served from memory.
DEFAULT_TTL = 1.0
_MAX_ENTRIES = 100_000
#: An expired entry is still served while its refresh runs, up to this many TTLs old.
STALE_FACTOR = 10.0


class Directory:
    def __init__(
        self, db: Database, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._db = db
        self._ttl = ttl
        self._clock = clock
        self._accounts: dict[str, tuple[float, Account | None]] = {}
        self._apps: dict[str, tuple[float, App | None]] = {}
        self._reading: dict[tuple[int, str], asyncio.Future[Any]] = {}

    async def account(self, sid: str) -> Account | None:
        return await self._cached(self._accounts, sid, lambda uow: uow.accounts.get(sid))

    async def app(self, appid: str) -> App | None:
        return await self._cached(self._apps, appid, lambda uow: uow.apps.get(appid))

    async def _cached(
        self,
        cache: dict[str, tuple[float, T | None]],
        key: str,
        load: Callable[[UnitOfWork], Awaitable[T | None]],
    ) -> T | None:
        now = self._clock()
        hit = cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        flight = (id(cache), key)
        reading = self._reading.get(flight)
        if reading is None:
            reading = asyncio.ensure_future(self._read(cache, key, load))
            reading.add_done_callback(_retrieve)
            self._reading[flight] = reading
            reading.add_done_callback(lambda _: self._reading.pop(flight, None))
        if hit is not None and now - hit[0] < STALE_FACTOR * self._ttl:
            return hit[1]  # expired moments ago: answer now, the read above refreshes it
        return cast("T | None", await asyncio.shield(reading))

    async def _read(
        self,
        cache: dict[str, tuple[float, T | None]],
        key: str,
        load: Callable[[UnitOfWork], Awaitable[T | None]],
    ) -> T | None:
        async with self._db.reader() as uow:
            value = await load(uow)
        if len(cache) >= _MAX_ENTRIES:  # unknown keys must not grow memory without bound
            cache.clear()
        cache[key] = (self._clock() + self._ttl, value)
        return value


def _retrieve(reading: asyncio.Future[Any]) -> None:
    """A refresh nobody awaited that failed is logged by the next request's own read."""
    if not reading.cancelled():
        reading.exception()
