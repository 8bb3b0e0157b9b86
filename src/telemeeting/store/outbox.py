"""The outbox: claiming due pushes in per-leg order, and recording how each attempt went.

A claim is a lease: the claimed events' `next_attempt_at` moves past the delivery timeout, so
an event whose dispatcher died mid-delivery becomes due again by itself. On PostgreSQL several
dispatchers claim with `FOR UPDATE SKIP LOCKED`; on SQLite the write lock serialises claims.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from telemeeting.store.connection import Connection, as_dict
from telemeeting.store.sql import Dialect, Statement

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"
STORED = "stored"  # kept and queryable, never pushed (sandbox, or no callback URL)
STATES = (PENDING, DELIVERED, DEAD, STORED)


@dataclass(frozen=True)
class Delivery:
    """One claimed push, with what is needed to send it."""

    event_id: str
    meeting_id: str
    seq: int
    kind: str
    body: str
    attempt: int
    pending_since: float
    callback_url: str
    secret: str
    app_id: str = ""


@dataclass(frozen=True)
class EventSummary:
    id: str
    app_id: str
    meeting_id: str
    seq: int
    kind: str
    delivery: str
    attempts: int
    created_at: float
    next_attempt_at: float | None
    delivered_at: float | None
    last_error: str


# Due events first in their stream: no earlier pending event of the same leg (or, for meeting
# events, no earlier pending meeting event) of the same meeting.
_CLAIM = """
SELECT e.id, e.meeting_id, e.seq, e.kind, e.body, e.attempts, e.pending_since, e.created_at,
       e.app_id, a.callback_url, c.auth_token
FROM events e
JOIN apps a ON a.appid = e.app_id
JOIN accounts c ON c.sid = a.account_sid
WHERE e.delivery = 'pending' AND e.next_attempt_at <= :now
  AND NOT EXISTS (
    SELECT 1 FROM events p
    WHERE p.meeting_id = e.meeting_id AND p.delivery = 'pending' AND p.seq < e.seq
      AND (p.leg_id = e.leg_id OR (p.leg_id IS NULL AND e.leg_id IS NULL)))
ORDER BY e.next_attempt_at
LIMIT :limit
"""
_CLAIM_STATEMENT = Statement(_CLAIM, postgres=_CLAIM + " FOR UPDATE OF e SKIP LOCKED")
_LEASE = Statement(
    "UPDATE events SET next_attempt_at = :until, attempts = attempts + 1 WHERE id IN "
    "(SELECT value FROM json_each(:ids))",
    postgres="UPDATE events SET next_attempt_at = :until, attempts = attempts + 1 "
    "WHERE id = ANY(:ids)",
)
_SETTLE_WHERE = " WHERE id = :id AND delivery = 'pending' AND attempts = :attempt"
_DELIVERED = Statement(
    "UPDATE events SET delivery = 'delivered', delivered_at = :at, last_error = ''" + _SETTLE_WHERE
)
_RETRY = Statement("UPDATE events SET next_attempt_at = :at, last_error = :error" + _SETTLE_WHERE)
_DEAD = Statement(
    "UPDATE events SET delivery = 'dead', next_attempt_at = NULL, last_error = :error"
    + _SETTLE_WHERE
)
_SUMMARY_COLUMNS = (
    "id, app_id, meeting_id, seq, kind, delivery, attempts, created_at, next_attempt_at, "
    "delivered_at, last_error"
)
_LIST = Statement(
    f"SELECT {_SUMMARY_COLUMNS} FROM events "
    "WHERE (:app_id = '' OR app_id = :app_id) AND (:state = '' OR delivery = :state) "
    "ORDER BY created_at, seq LIMIT :limit"
)
_REDELIVER = (
    "UPDATE events SET delivery = 'pending', next_attempt_at = :now, pending_since = :now, "
    "last_error = '' WHERE (:app_id = '' OR app_id = :app_id) AND "
)
_REDELIVER_ONE = Statement(_REDELIVER + "id = :id AND delivery != 'stored'")
_REDELIVER_DEAD = Statement(_REDELIVER + "delivery = 'dead'")


class OutboxRepository:
    def __init__(self, connection: Connection, dialect: Dialect) -> None:
        self._db = connection
        self._dialect = dialect

    async def claim(self, now: float, lease: float, limit: int) -> list[Delivery]:
        """Due events that are first in their stream, leased for `lease` seconds."""
        rows = await self._db.fetch(_CLAIM_STATEMENT, {"now": now, "limit": limit})
        if not rows:
            return []
        claimed = [
            Delivery(
                event_id=row["id"],
                meeting_id=row["meeting_id"],
                seq=row["seq"],
                kind=row["kind"],
                body=row["body"],
                attempt=row["attempts"] + 1,
                pending_since=row["pending_since"] or row["created_at"],
                callback_url=row["callback_url"],
                secret=row["auth_token"],
                app_id=row["app_id"],
            )
            for row in rows
        ]
        ids: object = [d.event_id for d in claimed]
        if self._dialect is Dialect.SQLITE:
            ids = json.dumps(ids)
        await self._db.execute(_LEASE, {"until": now + lease, "ids": ids})
        return claimed

    async def delivered(self, attempt: Delivery, now: float) -> None:
        await self._db.execute(_DELIVERED, _settled(attempt, at=now))

    async def retry_at(self, attempt: Delivery, when: float, error: str) -> None:
        await self._db.execute(_RETRY, _settled(attempt, at=when, error=error[:500]))

    async def dead(self, attempt: Delivery, error: str) -> None:
        await self._db.execute(_DEAD, _settled(attempt, error=error[:500]))

    async def list(
        self, app_id: str | None, state: str | None, limit: int = 1000
    ) -> list[EventSummary]:
        rows = await self._db.fetch(
            _LIST, {"app_id": app_id or "", "state": state or "", "limit": limit}
        )
        return [EventSummary(**as_dict(row)) for row in rows]

    async def redeliver(
        self, now: float, event_id: str | None = None, app_id: str | None = None
    ) -> int:
        """Make one event (any state but stored), or every dead one, pending again from now."""
        params: dict[str, object] = {"now": now, "app_id": app_id or ""}
        if event_id:
            return await self._db.execute(_REDELIVER_ONE, {**params, "id": event_id})
        return await self._db.execute(_REDELIVER_DEAD, params)


def _settled(attempt: Delivery, **values: object) -> dict[str, object]:
    """An attempt's outcome counts only while no later attempt (or redelivery) took over."""
    return {"id": attempt.event_id, "attempt": attempt.attempt, **values}
