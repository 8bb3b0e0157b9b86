"""The request a use case is accepting: its id, and the idempotency key to answer repeats with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telemeeting.store.idempotency import IdempotencyKey
from telemeeting.store.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Acceptance:
    request_id: str
    idempotency: IdempotencyKey | None = None

    async def record(self, uow: UnitOfWork, **extra: Any) -> None:
        """Remember the answer in the same transaction as the change it reports."""
        if self.idempotency is not None:
            await uow.idempotency.complete(
                self.idempotency, {"requestId": self.request_id, **extra}
            )
