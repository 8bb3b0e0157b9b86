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

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from telemeeting.store.tables import IdempotencyRow

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


class IdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def claim(
        self, key: IdempotencyKey, request_hash: str, now: float, lease: float
    ) -> ClaimResult:
        row = await self._session.scalar(
            select(IdempotencyRow)
            .where(IdempotencyRow.account_sid == key.account_sid, IdempotencyRow.key == key.key)
            .with_for_update()
        )
        if row is None:
            self._session.add(
                IdempotencyRow(
                    account_sid=key.account_sid,
                    key=key.key,
                    request_hash=request_hash,
                    response=None,
                    created_at=now,
                    claimed_at=now,
                )
            )
            await self._session.flush()
            return ClaimResult(Claim.NEW)
        expired = row.created_at < now - RETENTION_SECONDS
        abandoned = row.response is None and row.claimed_at < now - lease
        if expired or (abandoned and row.request_hash == request_hash):
            row.request_hash, row.response = request_hash, None
            row.created_at = now if expired else row.created_at
            row.claimed_at = now
            await self._session.flush()
            return ClaimResult(Claim.NEW)
        if row.request_hash != request_hash:
            return ClaimResult(Claim.MISMATCH)
        if row.response is None:
            return ClaimResult(Claim.BUSY)
        return ClaimResult(Claim.REPLAY, json.loads(row.response))

    async def complete(self, key: IdempotencyKey, response: dict[str, Any]) -> None:
        await self._session.execute(
            update(IdempotencyRow)
            .where(IdempotencyRow.account_sid == key.account_sid, IdempotencyRow.key == key.key)
            .values(response=json.dumps(response, ensure_ascii=False))
        )

    async def release(self, key: IdempotencyKey) -> None:
        """Forget a claim whose request was refused: only accepted requests are remembered."""
        await self._session.execute(
            delete(IdempotencyRow).where(
                IdempotencyRow.account_sid == key.account_sid,
                IdempotencyRow.key == key.key,
                IdempotencyRow.response.is_(None),
            )
        )
