"""The outbox: claiming due pushes in per-leg order, and recording how each attempt went.

A claim is a lease: the claimed events' `next_attempt_at` moves past the delivery timeout, so
an event whose dispatcher died mid-delivery becomes due again by itself. On PostgreSQL several
dispatchers claim with `FOR UPDATE SKIP LOCKED`; on SQLite the write lock serialises claims.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from telemeeting.store.tables import AccountRow, AppRow, EventRow

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


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def claim(self, now: float, lease: float, limit: int) -> list[Delivery]:
        """Due events that are first in their stream (a leg, or the meeting itself)."""
        earlier = aliased(EventRow)
        same_stream = or_(
            earlier.leg_id == EventRow.leg_id,
            and_(earlier.leg_id.is_(None), EventRow.leg_id.is_(None)),
        )
        blocked = exists().where(
            earlier.meeting_id == EventRow.meeting_id,
            earlier.delivery == PENDING,
            earlier.seq < EventRow.seq,
            same_stream,
        )
        rows = (
            await self._session.execute(
                select(EventRow, AppRow.callback_url, AccountRow.auth_token)
                .join(AppRow, AppRow.appid == EventRow.app_id)
                .join(AccountRow, AccountRow.sid == AppRow.account_sid)
                .where(EventRow.delivery == PENDING, EventRow.next_attempt_at <= now, ~blocked)
                .order_by(EventRow.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True, of=EventRow)
            )
        ).all()
        if not rows:
            return []
        # Read everything before the UPDATE, which also refreshes the loaded rows.
        claimed = [
            Delivery(
                event_id=event.id,
                meeting_id=event.meeting_id,
                seq=event.seq,
                kind=event.kind,
                body=event.body,
                attempt=event.attempts + 1,
                pending_since=event.pending_since or event.created_at,
                callback_url=url,
                secret=token,
            )
            for event, url, token in rows
        ]
        await self._session.execute(
            update(EventRow)
            .where(EventRow.id.in_([d.event_id for d in claimed]))
            .values(next_attempt_at=now + lease, attempts=EventRow.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        return claimed

    async def delivered(self, attempt: Delivery, now: float) -> None:
        await self._settle(attempt, delivery=DELIVERED, delivered_at=now, last_error="")

    async def retry_at(self, attempt: Delivery, when: float, error: str) -> None:
        await self._settle(attempt, next_attempt_at=when, last_error=error[:500])

    async def dead(self, attempt: Delivery, error: str) -> None:
        await self._settle(attempt, delivery=DEAD, next_attempt_at=None, last_error=error[:500])

    async def _settle(self, attempt: Delivery, **values: object) -> None:
        """Record an attempt's outcome, unless a later attempt (or a redelivery) has taken over."""
        await self._session.execute(
            update(EventRow)
            .where(
                EventRow.id == attempt.event_id,
                EventRow.delivery == PENDING,
                EventRow.attempts == attempt.attempt,
            )
            .values(**values)
        )

    async def list(
        self, app_id: str | None, state: str | None, limit: int = 1000
    ) -> list[EventSummary]:
        query = select(EventRow).order_by(EventRow.created_at, EventRow.seq).limit(limit)
        if app_id:
            query = query.where(EventRow.app_id == app_id)
        if state:
            query = query.where(EventRow.delivery == state)
        return [
            EventSummary(
                id=row.id,
                app_id=row.app_id,
                meeting_id=row.meeting_id,
                seq=row.seq,
                kind=row.kind,
                delivery=row.delivery,
                attempts=row.attempts,
                created_at=row.created_at,
                next_attempt_at=row.next_attempt_at,
                delivered_at=row.delivered_at,
                last_error=row.last_error,
            )
            for row in await self._session.scalars(query)
        ]

    async def redeliver(
        self, now: float, event_id: str | None = None, app_id: str | None = None
    ) -> int:
        """Make one event (any state but stored), or every dead one, pending again from now."""
        query = update(EventRow).values(
            delivery=PENDING, next_attempt_at=now, pending_since=now, last_error=""
        )
        if event_id:
            query = query.where(EventRow.id == event_id, EventRow.delivery != STORED)
        else:
            query = query.where(EventRow.delivery == DEAD)
        if app_id:
            query = query.where(EventRow.app_id == app_id)
        result = await self._session.execute(query)
        return result.rowcount
