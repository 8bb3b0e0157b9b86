"""Repositories: the only code that turns rows into domain objects and back."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import Select, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from telemeeting.domain.model import EndReason, Leg, LegState, Meeting, MeetingState
from telemeeting.store.records import Account, App, StoredEvent
from telemeeting.store.tables import AccountRow, AppRow, EventRow, LegRow, MeetingRow

_MEETING_FIELDS = [f.name for f in dataclasses.fields(Meeting) if f.name not in ("legs", "events")]
_LEG_FIELDS = [f.name for f in dataclasses.fields(Leg)]
_MEETINGS = MeetingRow.__table__
_LEGS = LegRow.__table__


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

    async def named(self, name: str) -> list[Account]:
        """Accounts with this label, oldest first."""
        rows = await self._session.scalars(
            select(AccountRow).where(AccountRow.name == name).order_by(AccountRow.created_at)
        )
        return [_record(Account, row) for row in rows]

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

    async def of_account(self, account_sid: str) -> list[App]:
        rows = await self._session.scalars(
            select(AppRow).where(AppRow.account_sid == account_sid).order_by(AppRow.created_at)
        )
        return [_record(App, row) for row in rows]

    async def update(self, appid: str, **values: Any) -> bool:
        result = await self._session.execute(
            update(AppRow).where(AppRow.appid == appid).values(**values)
        )
        return result.rowcount > 0


class MeetingRepository:
    """Loads whole meetings (with legs) under a row lock, and saves only what changed.

    Core statements rather than ORM objects: this is the hot path of every request and every
    carrier report, and the unit-of-work machinery of the ORM costs more than the SQL itself.
    """

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._meetings: dict[str, dict[str, Any]] = {}  # meeting id -> row values when loaded
        self._legs: dict[str, dict[str, Any]] = {}  # leg id -> row values when loaded

    async def get(self, meeting_id: str) -> Meeting | None:
        """The meeting, locked, with its live legs: what every change needs."""
        return await self._load(_MEETINGS.select().where(_MEETINGS.c.id == meeting_id))

    async def find(self, app_id: str, meid: str, lock: bool = True) -> Meeting | None:
        """The app's open meeting with this room number, else the latest ended one.

        Locked and with live legs only for a change (`lock`); unlocked with every leg to read.
        """
        return await self._load(
            _MEETINGS.select()
            .where(_MEETINGS.c.app_id == app_id, _MEETINGS.c.meid == meid)
            .order_by(
                (_MEETINGS.c.state == MeetingState.ENDED.value).asc(),
                _MEETINGS.c.created_at.desc(),
            )
            .limit(1),
            lock,
        )

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

    async def ids_with_live_legs(self, owner: str) -> list[str]:
        """Active meetings of `owner` that still have legs ringing or joined."""
        rows = await self._session.scalars(
            select(LegRow.meeting_id)
            .join(MeetingRow, MeetingRow.id == LegRow.meeting_id)
            .where(
                LegRow.state != LegState.DISCONNECT.value,
                MeetingRow.state == MeetingState.ACTIVE.value,
                MeetingRow.owner == owner,
            )
            .distinct()
        )
        return list(rows)

    async def _load(self, query: Select[Any], lock: bool = True) -> Meeting | None:
        """The meeting and its legs; `lock` holds its row until the transaction ends."""
        if lock:
            query = query.with_for_update()
        row = (await self._session.execute(query)).mappings().first()
        if row is None:
            return None
        legs_query = _LEGS.select().where(_LEGS.c.meeting_id == row["id"])
        if lock:
            legs_query = legs_query.where(_LEGS.c.state != LegState.DISCONNECT.value)
        legs = await self._session.execute(legs_query.order_by(_LEGS.c.position))
        meeting = Meeting(**{name: row[name] for name in _MEETING_FIELDS})
        meeting.state = MeetingState(row["state"])
        self._meetings[meeting.id] = dict(row)
        for leg_row in legs.mappings():
            leg = Leg(**{name: leg_row[name] for name in _LEG_FIELDS})
            leg.state = LegState(leg_row["state"])
            leg.end_reason = EndReason(leg_row["end_reason"]) if leg_row["end_reason"] else None
            meeting.legs.append(leg)
            self._legs[leg.id] = self._leg_values(leg)
        return meeting

    def reserve_seqs(self, meeting_id: str, count: int) -> int:
        """The first of `count` consecutive sequence numbers; written by the next `save`.

        Safe because the meeting's row is locked for the whole transaction.
        """
        loaded = self._meetings[meeting_id]
        first = int(loaded.get("pending_next_seq", loaded["next_seq"]))
        loaded["pending_next_seq"] = first + count
        return first

    @staticmethod
    def _leg_values(leg: Leg) -> dict[str, Any]:
        values = _values(leg, _LEG_FIELDS)
        values["state"] = leg.state.value
        values["end_reason"] = leg.end_reason.value if leg.end_reason else None
        return values

    @staticmethod
    def _meeting_values(meeting: Meeting) -> dict[str, Any]:
        values = _values(meeting, _MEETING_FIELDS)
        values["state"] = meeting.state.value
        return values

    async def add(self, meeting: Meeting, owner: str = "") -> None:
        values = {**self._meeting_values(meeting), "next_seq": 1, "leg_count": 0, "owner": owner}
        await self._session.execute(insert(MeetingRow).values(**values))
        self._meetings[meeting.id] = values
        await self.save(meeting)

    async def save(self, meeting: Meeting) -> None:
        """Write what changed since load: one UPDATE of the meeting at most, new legs at once."""
        before = self._meetings[meeting.id]
        new_legs = []
        for leg in meeting.legs:
            leg_values = self._leg_values(leg)
            previous = self._legs.get(leg.id)
            if previous is None:
                position = before["leg_count"] + len(new_legs)
                new_legs.append({**leg_values, "meeting_id": meeting.id, "position": position})
            elif previous != leg_values:
                leg_changed = {k: v for k, v in leg_values.items() if previous[k] != v}
                await self._session.execute(
                    update(LegRow).where(LegRow.id == leg.id).values(**leg_changed)
                )
            self._legs[leg.id] = leg_values
        if new_legs:
            await self._session.execute(insert(LegRow), new_legs)
        values = self._meeting_values(meeting)
        changed = {k: v for k, v in values.items() if before.get(k) != v}
        if "pending_next_seq" in before:
            changed["next_seq"] = before.pop("pending_next_seq")
        if new_legs:
            changed["leg_count"] = before["leg_count"] + len(new_legs)
        if changed:
            await self._session.execute(
                update(MeetingRow).where(MeetingRow.id == meeting.id).values(**changed)
            )
            before.update(changed)


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_all(self, events: list[StoredEvent], pushed: bool) -> None:
        """Store pushes; `pushed` ones are due for delivery at once."""
        await self._session.execute(
            insert(EventRow),
            [
                {
                    **dataclasses.asdict(event),
                    "next_attempt_at": event.created_at if pushed else None,
                    "pending_since": event.created_at if pushed else None,
                }
                for event in events
            ],
        )

    async def for_meeting(self, meeting_id: str, after: int, limit: int) -> list[StoredEvent]:
        rows = await self._session.scalars(
            select(EventRow)
            .where(EventRow.meeting_id == meeting_id, EventRow.seq > after)
            .order_by(EventRow.seq)
            .limit(limit)
        )
        return [_record(StoredEvent, row) for row in rows]
