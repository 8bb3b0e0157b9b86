"""The Idempotency-Key header (spec §6.7): the first accepted answer, for every repeat."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

from telemeeting.store.connection import Conflict
from telemeeting.store.idempotency import Claim, ClaimResult, IdempotencyKey
from telemeeting.store.unit_of_work import Database
from telemeeting.wire.idempotency import HEADER as WIRE_HEADER
from telemeeting.wire.idempotency import valid_key
from telemeeting.wire.status import Status, WireError

HEADER = WIRE_HEADER.lower()  # as Starlette presents header names
#: A claim older than this whose request never committed is taken to have died with its server.
LEASE_SECONDS = 60.0
#: How long a repeat waits for the first request, still running, to finish.
WAIT_SECONDS = 30.0


def parse_key(value: str) -> str:
    """The key (wire.idempotency.valid_key), else -101."""
    if not valid_key(value):
        raise WireError(Status.INVALID_PARAMETER, "Idempotency-Key must be 1-128 printable chars")
    return value


def body_hash(body: dict[str, Any]) -> str:
    """The same parameters in another order or spacing are the same request."""
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyGate:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(self, key: IdempotencyKey, request_hash: str) -> ClaimResult:
        """NEW (run it), REPLAY (with the stored answer), or -101 for another body."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            try:
                async with self._db.unit_of_work() as uow:
                    result = await uow.idempotency.claim(
                        key, request_hash, time.time(), LEASE_SECONDS
                    )
            except Conflict:  # a concurrent first request inserted it: look again
                result = ClaimResult(Claim.BUSY)
            if result.outcome is Claim.MISMATCH:
                raise WireError(Status.INVALID_PARAMETER, "Idempotency-Key reused for another body")
            if result.outcome is not Claim.BUSY:
                return result
            if time.monotonic() > deadline:
                raise WireError(Status.RATE_LIMITED, "the first request with this key is running")
            await asyncio.sleep(0.05)

    async def release(self, key: IdempotencyKey) -> None:
        async with self._db.unit_of_work() as uow:
            await uow.idempotency.release(key)
