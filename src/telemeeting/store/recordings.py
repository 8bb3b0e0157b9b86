"""Recordings as rows (migration 0010). Bound to a unit of work's connection by the caller:
`RecordingRepository(uow.connection)`."""

from __future__ import annotations

from dataclasses import dataclass

from telemeeting.store.connection import Connection, Row
from telemeeting.store.sql import Statement


@dataclass(frozen=True)
class StoredRecording:
    id: str
    meeting_id: str
    app_id: str
    started_at: float
    stopped_at: float | None
    path: str


_COLUMNS = "id, meeting_id, app_id, started_at, stopped_at, path"
_INSERT = Statement(
    f"INSERT INTO recordings ({_COLUMNS}) "
    "VALUES (:id, :meeting_id, :app_id, :started_at, :stopped_at, :path)"
)
_FOR_MEETING = Statement(
    f"SELECT {_COLUMNS} FROM recordings WHERE meeting_id = :meeting_id ORDER BY started_at, id"
)
_GET = Statement(f"SELECT {_COLUMNS} FROM recordings WHERE id = :id")
_STOP = Statement("UPDATE recordings SET stopped_at = :at WHERE id = :id AND stopped_at IS NULL")
_STARTED_BEFORE = Statement(
    f"SELECT {_COLUMNS} FROM recordings WHERE started_at < :before ORDER BY started_at"
)
_DELETE = Statement("DELETE FROM recordings WHERE id = :id")


def _row(r: Row) -> StoredRecording:
    stopped = r["stopped_at"]
    return StoredRecording(
        r["id"],
        r["meeting_id"],
        r["app_id"],
        float(r["started_at"]),
        None if stopped is None else float(stopped),
        r["path"],
    )


class RecordingRepository:
    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def add(self, recording: StoredRecording) -> None:
        await self._db.execute(_INSERT, vars(recording))

    async def for_meeting(self, meeting_id: str) -> list[StoredRecording]:
        return [_row(r) for r in await self._db.fetch(_FOR_MEETING, {"meeting_id": meeting_id})]

    async def get(self, recording_id: str) -> StoredRecording | None:
        row = await self._db.fetchone(_GET, {"id": recording_id})
        return _row(row) if row is not None else None

    async def stop(self, recording_id: str, at: float) -> bool:
        return await self._db.execute(_STOP, {"id": recording_id, "at": at}) > 0

    async def started_before(self, before: float) -> list[StoredRecording]:
        return [_row(r) for r in await self._db.fetch(_STARTED_BEFORE, {"before": before})]

    async def delete(self, recording_id: str) -> None:
        await self._db.execute(_DELETE, {"id": recording_id})
