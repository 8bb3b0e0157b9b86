"""The request a use case is accepting: its id, the idempotency key to answer repeats with, and
what its Authorization timestamp says about the client's clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telemeeting.store.idempotency import IdempotencyKey
from telemeeting.store.unit_of_work import UnitOfWork
from telemeeting.wire.auth import ClientClock


@dataclass(frozen=True)
class Acceptance:
    request_id: str
    idempotency: IdempotencyKey | None = None
    client_clock: ClientClock | None = None

    async def record(self, uow: UnitOfWork, **extra: Any) -> None:
        """Remember the answer in the same transaction as the change it reports."""
        if self.idempotency is not None:
            await uow.idempotency.complete(
                self.idempotency, {"requestId": self.request_id, **extra}
            )
