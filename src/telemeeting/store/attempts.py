"""Every push delivery attempt: when it started, the receiver's HTTP status, how long it took,
and the error (migration 0009).

The outbox row keeps only the count and the last error; an integrator asking "why did my server
never get this push" needs each try. The dispatcher already settles a batch of outcomes in one
transaction per turn; the attempts of that batch are written in the same transaction, in one
statement, so recording them adds no round trip per push.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from telemeeting.store.connection import Connection, as_dict
from telemeeting.store.sql import Dialect, Statement


@dataclass(frozen=True)
class Attempt:
    event_id: str
    attempt: int
    at: float
    status: int | None
    latency_ms: float | None
    outcome: str  # delivered | pending (a retry is due) | dead
    error: str = ""


_COLUMNS = ("event_id", "attempt", "at", "status", "latency_ms", "outcome", "error")
_INSERT = Statement(
    f"INSERT INTO delivery_attempts ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _COLUMNS)})"
)
_INSERT_BATCH = Statement(
    f"INSERT INTO delivery_attempts ({', '.join(_COLUMNS)}) "
    "SELECT * FROM unnest(CAST(:event_ids AS text[]), CAST(:attempts AS int[]), "
    "CAST(:ats AS float8[]), CAST(:statuses AS int[]), CAST(:latencies AS float8[]), "
    "CAST(:outcomes AS text[]), CAST(:errors AS text[]))"
)
_OF_EVENTS = Statement(
    f"SELECT {', '.join(_COLUMNS)} FROM delivery_attempts "
    "WHERE event_id IN (SELECT value FROM json_each(:ids)) ORDER BY event_id, id",
    postgres=f"SELECT {', '.join(_COLUMNS)} FROM delivery_attempts "
    "WHERE event_id = ANY(CAST(:ids AS text[])) ORDER BY event_id, id",
)


class AttemptRepository:
    def __init__(self, connection: Connection, dialect: Dialect) -> None:
        self._db = connection
        self._dialect = dialect

    async def record(self, attempts: Sequence[Attempt]) -> None:
        """Store a batch of attempts: one statement, however many."""
        if not attempts:
            return
        if self._dialect is Dialect.POSTGRES:
            await self._db.execute(
                _INSERT_BATCH,
                {
                    "event_ids": [a.event_id for a in attempts],
                    "attempts": [a.attempt for a in attempts],
                    "ats": [a.at for a in attempts],
                    "statuses": [a.status for a in attempts],
                    "latencies": [a.latency_ms for a in attempts],
                    "outcomes": [a.outcome for a in attempts],
                    "errors": [a.error[:500] for a in attempts],
                },
            )
        else:
            await self._db.execute_many(
                _INSERT, [{**vars(a), "error": a.error[:500]} for a in attempts]
            )

    async def of_events(self, event_ids: Sequence[str]) -> dict[str, list[Attempt]]:
        """Each event's attempts, oldest first."""
        if not event_ids:
            return {}
        if self._dialect is Dialect.POSTGRES:
            ids: object = list(event_ids)
        else:
            ids = json.dumps(list(event_ids))
        found: dict[str, list[Attempt]] = {}
        for row in await self._db.fetch(_OF_EVENTS, {"ids": ids}):
            attempt = Attempt(**as_dict(row))
            found.setdefault(attempt.event_id, []).append(attempt)
        return found
