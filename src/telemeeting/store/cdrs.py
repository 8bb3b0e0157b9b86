"""CDRs kept for the pull (CallCdr.wx): each leg's `cdr` entry exactly as pushed, and its charge.

Paging is by `id`. For a page boundary to be stable, an account's ids must become visible in
id order: a CDR committed later must never get a smaller id than one a client has already
read. On PostgreSQL a deferred trigger (migration 0015) therefore locks the account's row and
gives each CDR the next id inside COMMIT, so an account's CDR-writing transactions are
serialized only for the commit itself (a billed change also holds the lock from its debit on,
`LedgerRepository.lock`); on SQLite the single writer does the same. Each read is one
statement (one snapshot).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from telemeeting.store.connection import Connection
from telemeeting.store.sql import Statement


@dataclass(frozen=True)
class NewCdr:
    account_sid: str
    app_id: str
    env: str
    meeting_id: str
    leg_id: str
    requestid: str
    called: str
    body: str
    charge: float
    created_at: float


@dataclass(frozen=True)
class StoredCdr:
    id: int
    body: str


_COLUMNS = (
    "account_sid",
    "app_id",
    "env",
    "meeting_id",
    "leg_id",
    "requestid",
    "called",
    "body",
    "charge",
    "created_at",
)
_INSERT = Statement(
    f"INSERT INTO cdrs ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)})"
)
_MINE = "account_sid = :account_sid AND env = :env"
_AFTER_ID = Statement(
    f"SELECT id, body FROM cdrs WHERE {_MINE} AND id > :after ORDER BY id LIMIT :limit"
)
# The position of `lastresid`: its CDR with the highest id (one requestid may name several).
_AFTER_REQUEST = Statement(
    f"SELECT id, body FROM cdrs WHERE {_MINE} AND id > (SELECT MAX(id) FROM cdrs WHERE {_MINE} "
    "AND requestid = :requestid) ORDER BY id LIMIT :limit"
)
_AFTER_LEG = Statement(
    f"SELECT id, body FROM cdrs WHERE {_MINE} AND id > (SELECT MAX(id) FROM cdrs WHERE {_MINE} "
    "AND requestid = :requestid AND called = :called) ORDER BY id LIMIT :limit"
)
_KNOWN_REQUEST = Statement(f"SELECT 1 FROM cdrs WHERE {_MINE} AND requestid = :requestid LIMIT 1")
_KNOWN_LEG = Statement(
    f"SELECT 1 FROM cdrs WHERE {_MINE} AND requestid = :requestid AND called = :called LIMIT 1"
)
_OF_REQUEST = Statement(
    f"SELECT id, body FROM cdrs WHERE {_MINE} AND requestid = :requestid ORDER BY id"
)
_BETWEEN = Statement(
    f"SELECT id, body FROM cdrs WHERE {_MINE} AND created_at >= :start AND created_at < :end "
    "ORDER BY id"
)
_CHARGES = Statement("SELECT COUNT(*), COALESCE(SUM(charge), 0) FROM cdrs WHERE account_sid = :sid")


def _stored(rows: Sequence[object]) -> list[StoredCdr]:
    return [StoredCdr(row[0], row[1]) for row in rows]  # type: ignore[index]


class CdrRepository:
    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def add(self, cdrs: Sequence[NewCdr]) -> None:
        """Store CDRs; the caller holds the account's row lock (see the module's docstring)."""
        if cdrs:
            await self._db.execute_many(_INSERT, [vars(cdr) for cdr in cdrs])

    async def after(
        self,
        account_sid: str,
        env: str,
        limit: int,
        requestid: str | None = None,
        called: str | None = None,
    ) -> list[StoredCdr] | None:
        """Up to `limit` CDRs after the last one of `requestid` (and `called`, if given), or
        from the first when `requestid` is None; None when that position names no CDR."""
        mine = {"account_sid": account_sid, "env": env, "limit": limit}
        if requestid is None:
            return _stored(await self._db.fetch(_AFTER_ID, {**mine, "after": 0}))
        if called is None:
            rows = await self._db.fetch(_AFTER_REQUEST, {**mine, "requestid": requestid})
            known = _KNOWN_REQUEST
        else:
            params = {**mine, "requestid": requestid, "called": called}
            rows = await self._db.fetch(_AFTER_LEG, params)
            known = _KNOWN_LEG
        if rows:
            return _stored(rows)
        check = {"account_sid": account_sid, "env": env, "requestid": requestid}
        if called is not None:
            check["called"] = called
        return [] if await self._db.scalar(known, check) is not None else None

    async def of_request(self, account_sid: str, env: str, requestid: str) -> list[StoredCdr]:
        params = {"account_sid": account_sid, "env": env, "requestid": requestid}
        return _stored(await self._db.fetch(_OF_REQUEST, params))

    async def between(
        self, account_sid: str, env: str, start: float, end: float
    ) -> list[StoredCdr]:
        params = {"account_sid": account_sid, "env": env, "start": start, "end": end}
        return _stored(await self._db.fetch(_BETWEEN, params))

    async def charges(self, account_sid: str) -> tuple[int, float]:
        """How many CDRs the account has and what they were charged in total."""
        row = await self._db.fetchone(_CHARGES, {"sid": account_sid})
        return (int(row[0]), float(row[1])) if row else (0, 0.0)
