"""Accounts and apps, read through a short-lived cache.

Every request needs its account and its app, and both change rarely; reading them from the
database each time cost two transactions per request. An operator's change (disable an account,
put an app online, change a whitelist) takes effect within `ttl` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from telemeeting.store.records import Account, App
from telemeeting.store.unit_of_work import Database, UnitOfWork

T = TypeVar("T")

#: Seconds an account or app is served from memory.
DEFAULT_TTL = 1.0
_MAX_ENTRIES = 100_000


class Directory:
    def __init__(
        self, db: Database, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._db = db
        self._ttl = ttl
        self._clock = clock
        self._accounts: dict[str, tuple[float, Account | None]] = {}
        self._apps: dict[str, tuple[float, App | None]] = {}

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
        async with self._db.reader() as uow:
            value = await load(uow)
        if len(cache) >= _MAX_ENTRIES:  # unknown keys must not grow memory without bound
            cache.clear()
        cache[key] = (now + self._ttl, value)
        return value
