"""A meeting's in-call media settings (migration 0012's `meeting_media`), kept for the moments
they must be applied again without the request that asked for them: a booked meeting starting
(service/clock.py) and a media node taking a meeting over (service/calls.py). Bound to a unit of
work's connection by the caller: `MeetingMediaRepository(uow.connection)`."""

from __future__ import annotations

from dataclasses import dataclass

from telemeeting.store.connection import Connection
from telemeeting.store.sql import Statement


@dataclass(frozen=True)
class MediaSettings:
    record: bool
    #: 0 none, 1 on join, 2 on leave, 3 both (already resolved against `[meetings] beep`).
    beep: int
    end_on_creator_leave: bool
    speaker_events: bool


_INSERT = Statement(
    "INSERT INTO meeting_media (meeting_id, record, beep, end_on_creator_leave, speaker_events) "
    "VALUES (:meeting_id, :record, :beep, :end_on_creator_leave, :speaker_events)"
)
_GET = Statement(
    "SELECT record, beep, end_on_creator_leave, speaker_events FROM meeting_media "
    "WHERE meeting_id = :meeting_id"
)


class MeetingMediaRepository:
    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def add(self, meeting_id: str, settings: MediaSettings) -> None:
        await self._db.execute(
            _INSERT,
            {
                "meeting_id": meeting_id,
                "record": settings.record,
                "beep": settings.beep,
                "end_on_creator_leave": settings.end_on_creator_leave,
                "speaker_events": settings.speaker_events,
            },
        )

    async def get(self, meeting_id: str) -> MediaSettings | None:
        """The meeting's settings; None when it asked for nothing beyond the defaults."""
        row = await self._db.fetchone(_GET, {"meeting_id": meeting_id})
        if row is None:
            return None
        return MediaSettings(bool(row[0]), int(row[1]), bool(row[2]), bool(row[3]))
