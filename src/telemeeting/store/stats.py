"""What the database holds right now, for `/metrics`: one statement, cheap at any size.

Every part reads through an index and only rows that are still in play: meetings not ended
(`ix_meetings_state_expires`), the legs of active meetings (`ix_legs_meeting_phone`, which
leads with the meeting), the order table (its rows are deleted when carried out) and the pushes
pending or dead (`ix_events_delivery_due`). Ended meetings and delivered pushes, which only
grow, are never read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from telemeeting.domain.model import LegState, MeetingState
from telemeeting.store.connection import Connection
from telemeeting.store.outbox import DEAD, PENDING
from telemeeting.store.sql import Statement

_MEETING, _LEG, _ORDER, _PUSH = "meeting", "leg", "order", "push"
_OPEN = (MeetingState.BOOKED.value, MeetingState.ACTIVE.value)
_ACTIVE = MeetingState.ACTIVE.value
LEG_STATES = tuple(state.value for state in LegState)
MEETING_STATES = _OPEN

_SNAPSHOT = Statement(
    f"SELECT '{_MEETING}' AS kind, state, COUNT(*) AS n, "
    "CAST(NULL AS DOUBLE PRECISION) AS oldest FROM meetings "
    f"WHERE state IN ('{_OPEN[0]}', '{_OPEN[1]}') GROUP BY state "
    f"UNION ALL SELECT '{_LEG}', l.state, COUNT(*), NULL "
    "FROM meetings m JOIN legs l ON l.meeting_id = m.id "
    f"WHERE m.state = '{_ACTIVE}' GROUP BY l.state "
    f"UNION ALL SELECT '{_ORDER}', '', COUNT(*), MIN(created_at) FROM orders "
    f"UNION ALL SELECT '{_PUSH}', delivery, COUNT(*), MIN(COALESCE(pending_since, created_at)) "
    f"FROM events WHERE delivery IN ('{PENDING}', '{DEAD}') GROUP BY delivery"
)


@dataclass(frozen=True)
class StoreStats:
    """Counts of what is in play; `oldest_*` are Unix times, None when there is none."""

    #: Meetings not ended, by state (booked, active); every state present.
    meetings: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MEETING_STATES, 0))
    #: Legs of active meetings, by leg state; every state present.
    legs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LEG_STATES, 0))
    orders_pending: int = 0
    oldest_order_at: float | None = None
    pushes_pending: int = 0
    pushes_dead: int = 0
    oldest_push_pending_since: float | None = None


class StatsRepository:
    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def snapshot(self) -> StoreStats:
        meetings = dict.fromkeys(MEETING_STATES, 0)
        legs = dict.fromkeys(LEG_STATES, 0)
        orders, oldest_order = 0, None
        pending, dead, oldest_push = 0, 0, None
        for row in await self._db.fetch(_SNAPSHOT):
            kind, state, count, oldest = row[0], row[1], int(row[2]), row[3]
            if kind == _MEETING:
                meetings[state] = count
            elif kind == _LEG:
                legs[state] = count
            elif kind == _ORDER:
                orders, oldest_order = count, oldest
            elif state == PENDING:
                pending, oldest_push = count, oldest
            else:
                dead = count
        return StoreStats(meetings, legs, orders, oldest_order, pending, dead, oldest_push)
