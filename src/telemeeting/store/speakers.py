"""Who is talking in each meeting with speaker events (migration 0010's `speakers` table)."""

from __future__ import annotations

from telemeeting.store.connection import Connection
from telemeeting.store.sql import Statement

_INSERT = Statement("INSERT INTO speakers (meeting_id, legs, at) VALUES (:meeting_id, '', :at)")
_SET = Statement("UPDATE speakers SET legs = :legs, at = :at WHERE meeting_id = :meeting_id")
_GET = Statement("SELECT legs FROM speakers WHERE meeting_id = :meeting_id")


def parse_talking(legs: str) -> frozenset[str]:
    """The leg ids of a `speakers.legs` value (comma-separated, "" when nobody talks)."""
    return frozenset(leg for leg in legs.split(",") if leg)


class SpeakerRepository:
    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def enable(self, meeting_id: str, at: float) -> None:
        """The meeting reports its talkers (nobody talks yet)."""
        await self._db.execute(_INSERT, {"meeting_id": meeting_id, "at": at})

    async def set(self, meeting_id: str, legs: tuple[str, ...], at: float) -> None:
        await self._db.execute(_SET, {"meeting_id": meeting_id, "legs": ",".join(legs), "at": at})

    async def talking(self, meeting_id: str) -> frozenset[str] | None:
        """The legs talking now; None for a meeting without speaker events."""
        row = await self._db.fetchone(_GET, {"meeting_id": meeting_id})
        if row is None:
            return None
        return parse_talking(str(row[0]))
