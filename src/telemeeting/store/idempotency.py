"""Idempotency keys: who runs a request first, and the answer its repeats get (spec §6.7).

A key is claimed in its own short transaction before the request runs; the answer is written in
the request's own transaction, so an accepted request and its remembered answer commit together.
A claim whose request died without committing (a crash) can be taken over after a lease.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from telemeeting.store.connection import Connection
from telemeeting.store.sql import Dialect, Statement

#: How long an accepted answer is remembered.
RETENTION_SECONDS = 24 * 3600


class Claim(Enum):
    NEW = "new"  # run the request
    REPLAY = "replay"  # answer with the stored response
    MISMATCH = "mismatch"  # the key was used for another body: -101
    BUSY = "busy"  # the first request is still running: wait


@dataclass(frozen=True)
class IdempotencyKey:
    account_sid: str
    key: str


@dataclass(frozen=True)
class ClaimResult:
    outcome: Claim
    response: dict[str, Any] | None = None


_GET = "SELECT request_hash, response, created_at, claimed_at FROM idempotency_keys "
_GET += "WHERE account_sid = :sid AND key = :key"
_GET_LOCKED = Statement(_GET, postgres=_GET + " FOR UPDATE")
_INSERT = Statement(
    "INSERT INTO idempotency_keys (account_sid, key, request_hash, response, created_at, "
    "claimed_at) VALUES (:sid, :key, :hash, NULL, :now, :now)"
)
_RECLAIM = Statement(
    "UPDATE idempotency_keys SET request_hash = :hash, response = NULL, created_at = :created, "
    "claimed_at = :now WHERE account_sid = :sid AND key = :key"
)
_COMPLETE = Statement(
    "UPDATE idempotency_keys SET response = :response WHERE account_sid = :sid AND key = :key"
)
_RELEASE = Statement(
    "DELETE FROM idempotency_keys WHERE account_sid = :sid AND key = :key AND response IS NULL"
)


class IdempotencyRepository:
    def __init__(self, connection: Connection, dialect: Dialect) -> None:
        self._db = connection
        self._dialect = dialect

    async def claim(
        self, key: IdempotencyKey, request_hash: str, now: float, lease: float
    ) -> ClaimResult:
        """Raises store.connection.Conflict when a concurrent first request inserted the key."""
        ids = {"sid": key.account_sid, "key": key.key}
        row = await self._db.fetchone(_GET_LOCKED, ids)
        if row is None:
            await self._db.execute(_INSERT, {**ids, "hash": request_hash, "now": now})
            return ClaimResult(Claim.NEW)
        expired = row["created_at"] < now - RETENTION_SECONDS
        abandoned = row["response"] is None and row["claimed_at"] < now - lease
        if expired or (abandoned and row["request_hash"] == request_hash):
            created = now if expired else row["created_at"]
            params = {**ids, "hash": request_hash, "created": created, "now": now}
            await self._db.execute(_RECLAIM, params)
            return ClaimResult(Claim.NEW)
        if row["request_hash"] != request_hash:
            return ClaimResult(Claim.MISMATCH)
        if row["response"] is None:
            return ClaimResult(Claim.BUSY)
        return ClaimResult(Claim.REPLAY, json.loads(row["response"]))

    async def complete(self, key: IdempotencyKey, response: dict[str, Any]) -> None:
        params = {"sid": key.account_sid, "key": key.key}
        encoded = json.dumps(response, ensure_ascii=False)
        await self._db.execute(_COMPLETE, {**params, "response": encoded})

    async def release(self, key: IdempotencyKey) -> None:
        """Forget a claim whose request was refused: only accepted requests are remembered."""
        await self._db.execute(_RELEASE, {"sid": key.account_sid, "key": key.key})
