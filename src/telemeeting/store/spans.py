"""Which servers a meeting spans besides its owner (issue 16), and the legs they carry.

A row is written by the server a meeting is extended to when it admits its first caller of the
meeting (its end of the cascade link is filled in once reserved), and removed when its part of
the meeting is over (its last leg left, the meeting ended, or the server died). Orders for
the whole meeting go to the owner and to each server here (service/routing.py); a leg's
orders go to the server in its `legs.node`.
"""

from __future__ import annotations

from telemeeting.store.connection import Connection
from telemeeting.store.sql import Statement

_ADD = Statement(
    "INSERT INTO meeting_spans (meeting_id, node, host, port, created_at) "
    "VALUES (:meeting_id, :node, :host, :port, :now) ON CONFLICT (meeting_id, node) DO UPDATE "
    "SET host = excluded.host, port = excluded.port"
)
_REMOVE = Statement("DELETE FROM meeting_spans WHERE meeting_id = :meeting_id AND node = :node")
_REMOVE_NODE = Statement("DELETE FROM meeting_spans WHERE node = :node")
_SERVERS = Statement("SELECT node FROM meeting_spans WHERE meeting_id = :meeting_id ORDER BY node")
# `node != ''` lets both databases use the partial index ix_legs_node.
_MEETINGS_WITH_LEGS_ON = Statement(
    "SELECT DISTINCT meeting_id FROM legs WHERE node = :node AND node != '' "
    "AND state != 'disconnect'"
)
_STALE_SPANS = Statement(
    "SELECT DISTINCT s.node FROM meeting_spans s WHERE NOT EXISTS "
    "(SELECT 1 FROM nodes n WHERE n.id = s.node AND n.heartbeat_at >= :since)"
)
_PLACE_LEG = Statement("UPDATE legs SET node = :node WHERE id = :id")
_OWNER = Statement("SELECT owner FROM meetings WHERE id = :meeting_id")
_MEETINGS_SPANNED_BY = Statement("SELECT meeting_id FROM meeting_spans WHERE node = :node")


class SpanRepository:
    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def add(self, meeting_id: str, node: str, host: str, port: int, now: float) -> None:
        """`node` carries part of the meeting; its end of the link is `host`:`port`."""
        params = {"meeting_id": meeting_id, "node": node, "host": host, "port": port, "now": now}
        await self._db.execute(_ADD, params)

    async def remove(self, meeting_id: str, node: str) -> bool:
        return await self._db.execute(_REMOVE, {"meeting_id": meeting_id, "node": node}) > 0

    async def remove_node(self, node: str) -> int:
        """`node` carries no meeting any more (it died, or restarted and lost its calls)."""
        return await self._db.execute(_REMOVE_NODE, {"node": node})

    async def place_leg(self, leg_id: str, node: str) -> None:
        """A leg not yet dialled is carried by `node` (the owner handed its dial over)."""
        await self._db.execute(_PLACE_LEG, {"id": leg_id, "node": node})

    async def owner(self, meeting_id: str) -> str | None:
        """The meeting's owner ("" none yet), unlocked; None for no such meeting."""
        found = await self._db.scalar(_OWNER, {"meeting_id": meeting_id})
        return None if found is None else str(found)

    async def servers(self, meeting_id: str) -> list[str]:
        """The servers other than the owner the meeting spans."""
        return [str(r[0]) for r in await self._db.fetch(_SERVERS, {"meeting_id": meeting_id})]

    async def spanned_by(self, node: str) -> list[str]:
        """The meetings `node` carries a part of."""
        return [str(r[0]) for r in await self._db.fetch(_MEETINGS_SPANNED_BY, {"node": node})]

    async def stale_servers(self, since: float) -> list[str]:
        """Servers carrying parts of meetings they do not own whose heartbeat stopped before
        `since` (or that left the cluster). A server's leg of such a meeting always has its
        span: the admission that records the leg records the span (service/dialin.py), so
        this reads only the (small) spans table, never the legs."""
        return [str(r[0]) for r in await self._db.fetch(_STALE_SPANS, {"since": since})]

    async def meetings_with_legs_on(self, node: str) -> list[str]:
        """Meetings with live legs carried by `node` (not their owner)."""
        rows = await self._db.fetch(_MEETINGS_WITH_LEGS_ON, {"node": node})
        return [str(r[0]) for r in rows]
