"""Retention of ended meetings: `[retention] ended_meetings_days` after a meeting ended, its
rows go (store/retention.py says which, and what is kept: CDRs and the ledger, always).

Without it every meeting left its legs, pushes and meeting row forever: the soak's database grew
45-55 MiB a minute, and on PostgreSQL the growing indexes were a growing working set
(docs/performance.md, Soak). The clock role prunes a batch at a time with a pause between
batches, so pruning a large backlog never holds the database for long; `telemeeting prune` does
the same on demand, showing its progress.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from telemeeting.store.retention import Pruned, RetentionRepository
from telemeeting.store.unit_of_work import Database

DAY = 86400.0


@dataclass(frozen=True)
class RetentionPolicy:
    #: Ended meetings are kept this many days; 0 keeps them forever.
    days: float
    #: Meetings per batch (one transaction each).
    batch: int
    #: Pause between batches, seconds: other work gets the database in between.
    pause: float = 0.0

    def cutoff(self, now: float) -> float | None:
        """Meetings that ended before this are pruned; None when nothing ever is."""
        return now - self.days * DAY if self.days > 0 else None


class Retention:
    def __init__(self, db: Database, policy: RetentionPolicy, clock: Callable[[], float]) -> None:
        self._db = db
        self.policy = policy
        self._clock = clock

    async def pending(self) -> int:
        """How many meetings could be pruned now."""
        cutoff = self.policy.cutoff(self._clock())
        if cutoff is None:
            return 0
        async with self._db.reader() as uow:
            return await RetentionRepository(uow.connection, uow.dialect).count(cutoff)

    async def prune_batch(self) -> Pruned:
        """One transaction: up to `batch` meetings pruned (none when retention is off)."""
        cutoff = self.policy.cutoff(self._clock())
        if cutoff is None:
            return Pruned()
        async with self._db.unit_of_work() as uow:
            repository = RetentionRepository(uow.connection, uow.dialect)
            return await repository.prune(await repository.due(cutoff, self.policy.batch))

    async def prune(self, progress: Callable[[Pruned], None] | None = None) -> Pruned:
        """Batches until one finds fewer than a batch's worth; the total. `progress` is called
        after every batch with that batch's rows. The cutoff moves with the clock, so a run
        that takes long also takes what expired meanwhile, and then stops."""
        total = Pruned()
        while True:
            batch = await self.prune_batch()
            total.add(batch)
            if progress is not None:
                progress(batch)
            if batch.meetings < self.policy.batch:
                return total
            if self.policy.pause > 0:
                await asyncio.sleep(self.policy.pause)
