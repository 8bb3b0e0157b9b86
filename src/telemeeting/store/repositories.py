"""Repositories: the only code that turns rows into domain objects and back."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from telemeeting.domain.model import EndReason, Leg, LegState, Meeting, MeetingState
from telemeeting.store.records import Account, App, StoredEvent
from telemeeting.store.tables import AccountRow, AppRow, EventRow, LegRow, MeetingRow

_MEETING_FIELDS = [f.name for f in dataclasses.fields(Meeting) if f.name not in ("legs", "events")]
_LEG_FIELDS = [f.name for f in dataclasses.fields(Leg)]


def _values(row: Any, names: list[str]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in names}


def _record(cls: type, row: Any) -> Any:
    return cls(**_values(row, [f.name for f in dataclasses.fields(cls)]))


class AccountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, sid: str) -> Account | None:
        row = await self._session.get(AccountRow, sid)
        return _record(Account, row) if row else None

    async def add(self, account: Account) -> None:
        self._session.add(AccountRow(**dataclasses.asdict(account)))

    async def update(self, sid: str, **values: Any) -> bool:
        result = await self._session.execute(
            update(AccountRow).where(AccountRow.sid == sid).values(**values)
        )
        return result.rowcount > 0

    async def count(self) -> int:
        return (
            await self._session.execute(select(func.count()).select_from(AccountRow))
        ).scalar_one()


class AppRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, appid: str) -> App | None:
        row = await self._session.get(AppRow, appid)
        return _record(App, row) if row else None

    async def add(self, app: App) -> None:
        self._session.add(AppRow(**dataclasses.asdict(app)))

    async def update(self, appid: str, **values: Any) -> bool:
        result = await self._session.execute(
            update(AppRow).where(AppRow.appid == appid).values(**values)
        )
        return result.rowcount > 0


class MeetingRepository:
    """Loads whole meetings (with legs) under a row lock, and saves only what changed."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._loaded: dict[str, dict[str, Any]] = {}  # leg id -> its values when loaded

    async def get(self, meeting_id: str) -> Meeting | None:
        row = await self._session.scalar(
            select(MeetingRow).where(MeetingRow.id == meeting_id).with_for_update()
        )
        return await self._build(row) if row else None

    async def find(self, app_id: str, meid: str) -> Meeting | None:
        """The app's open meeting with this room number, else the latest ended one."""
        row = await self._session.scalar(
            select(MeetingRow)
            .where(MeetingRow.app_id == app_id, MeetingRow.meid == meid)
            .order_by(
                (MeetingRow.state == MeetingState.ENDED.value).asc(), MeetingRow.created_at.desc()
            )
            .limit(1)
            .with_for_update()
        )
        return await self._build(row) if row else None

    async def room_taken(self, app_id: str, meid: str) -> bool:
        found = await self._session.scalar(
            select(MeetingRow.id).where(
                MeetingRow.app_id == app_id,
                MeetingRow.meid == meid,
                MeetingRow.state != MeetingState.ENDED.value,
            )
        )
        return found is not None

    async def ids_due(self, now: float, limit: int = 100) -> tuple[list[str], list[str]]:
        """Meetings past their maximum duration, and booked meetings whose time has come."""
        expired = await self._session.scalars(
            select(MeetingRow.id)
            .where(MeetingRow.state == MeetingState.ACTIVE.value, MeetingRow.expires_at <= now)
            .limit(limit)
        )
        booked = await self._session.scalars(
            select(MeetingRow.id)
            .where(MeetingRow.state == MeetingState.BOOKED.value, MeetingRow.book_at <= now)
            .limit(limit)
        )
        return list(expired), list(booked)

    async def ids_with_live_legs(self) -> list[str]:
        rows = await self._session.scalars(
            select(LegRow.meeting_id)
            .join(MeetingRow, MeetingRow.id == LegRow.meeting_id)
            .where(
                LegRow.state != LegState.DISCONNECT.value,
                MeetingRow.state == MeetingState.ACTIVE.value,
            )
            .distinct()
        )
        return list(rows)

    async def _build(self, row: MeetingRow) -> Meeting:
        legs = await self._session.scalars(
            select(LegRow).where(LegRow.meeting_id == row.id).order_by(LegRow.position)
        )
        meeting = Meeting(**_values(row, _MEETING_FIELDS))
        meeting.state = MeetingState(row.state)
        for leg_row in legs:
            leg = Leg(**_values(leg_row, _LEG_FIELDS))
            leg.state = LegState(leg_row.state)
            leg.end_reason = EndReason(leg_row.end_reason) if leg_row.end_reason else None
            meeting.legs.append(leg)
            self._loaded[leg.id] = self._leg_values(leg)
        return meeting

    @staticmethod
    def _leg_values(leg: Leg) -> dict[str, Any]:
        values = _values(leg, _LEG_FIELDS)
        values["state"] = leg.state.value
        values["end_reason"] = leg.end_reason.value if leg.end_reason else None
        return values

    async def add(self, meeting: Meeting) -> None:
        self._session.add(MeetingRow(**self._meeting_values(meeting), next_seq=1))
        await self._session.flush()
        await self.save(meeting)

    @staticmethod
    def _meeting_values(meeting: Meeting) -> dict[str, Any]:
        values = _values(meeting, _MEETING_FIELDS)
        values["state"] = meeting.state.value
        return values

    async def save(self, meeting: Meeting) -> None:
        await self._session.execute(
            update(MeetingRow)
            .where(MeetingRow.id == meeting.id)
            .values(**self._meeting_values(meeting))
        )
        for position, leg in enumerate(meeting.legs):
            values = self._leg_values(leg)
            before = self._loaded.get(leg.id)
            if before is None:
                self._session.add(LegRow(meeting_id=meeting.id, position=position, **values))
            elif before != values:
                changed = {k: v for k, v in values.items() if before[k] != v}
                await self._session.execute(
                    update(LegRow).where(LegRow.id == leg.id).values(**changed)
                )
            self._loaded[leg.id] = values
        await self._session.flush()


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def reserve_seqs(self, meeting_id: str, count: int) -> int:
        """The first of `count` consecutive sequence numbers (the meeting row is locked)."""
        first = await self._session.scalar(
            select(MeetingRow.next_seq).where(MeetingRow.id == meeting_id)
        )
        await self._session.execute(
            update(MeetingRow)
            .where(MeetingRow.id == meeting_id)
            .values(next_seq=MeetingRow.next_seq + count)
        )
        return int(first or 1)

    def add(self, event: StoredEvent, next_attempt_at: float | None) -> None:
        self._session.add(
            EventRow(
                **dataclasses.asdict(event),
                next_attempt_at=next_attempt_at,
                pending_since=event.created_at if next_attempt_at is not None else None,
            )
        )

    async def for_meeting(self, meeting_id: str, after: int, limit: int) -> list[StoredEvent]:
        rows = await self._session.scalars(
            select(EventRow)
            .where(EventRow.meeting_id == meeting_id, EventRow.seq > after)
            .order_by(EventRow.seq)
            .limit(limit)
        )
        return [_record(StoredEvent, row) for row in rows]
