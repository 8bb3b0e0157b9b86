"""Dial-in lookups (migration 0013): the open dial-in meetings of production apps with a given
meeting number. A number is unique per app, not across apps, so there may be several; the PIN
decides (service/dialin.py). Bound by the caller: `DialInRepository(uow.connection)`."""

from __future__ import annotations

from telemeeting.store.connection import Connection
from telemeeting.store.sql import Statement
from telemeeting.wire.environments import PRODUCTION

_OPEN_BY_MEID = Statement(
    "SELECT m.id FROM meetings m JOIN apps a ON a.appid = m.app_id "
    "WHERE m.meid = :meid AND m.dialin = :yes AND m.state != 'ended' AND a.env = :env "
    "ORDER BY m.created_at LIMIT 8"
)


class DialInRepository:
    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def open_meetings(self, meid: str) -> list[str]:
        rows = await self._db.fetch(_OPEN_BY_MEID, {"meid": meid, "yes": True, "env": PRODUCTION})
        return [str(row[0]) for row in rows]
