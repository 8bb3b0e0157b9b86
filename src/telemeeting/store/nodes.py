"""Running server processes. A node's heartbeat is its lease on the meetings it owns."""

from __future__ import annotations

from dataclasses import dataclass

from telemeeting.store.connection import Connection, as_dict
from telemeeting.store.sql import Statement


@dataclass(frozen=True)
class NodeInfo:
    id: str
    roles: str
    address: str
    started_at: float
    heartbeat_at: float
    meetings: int = 0
    calls: int = 0
    orders: int = 0

    @property
    def role_set(self) -> set[str]:
        return set(filter(None, self.roles.split(",")))


_REGISTER = Statement(
    "INSERT INTO nodes (id, roles, address, started_at, heartbeat_at) "
    "VALUES (:id, :roles, :address, :now, :now) ON CONFLICT (id) DO UPDATE SET "
    "roles = excluded.roles, address = excluded.address, started_at = excluded.started_at, "
    "heartbeat_at = excluded.heartbeat_at"
)
_BEAT = Statement("UPDATE nodes SET heartbeat_at = :now WHERE id = :id")
_LEAVE = Statement("DELETE FROM nodes WHERE id = :id")
_LIST = Statement(
    "SELECT n.id, n.roles, n.address, n.started_at, n.heartbeat_at, "
    "COUNT(m.id) AS meetings, COALESCE(SUM(m.live_count), 0) AS calls, "
    "(SELECT COUNT(*) FROM orders o JOIN meetings om ON om.id = o.meeting_id "
    "WHERE (o.node = '' AND om.owner = n.id) OR o.node = n.id) AS orders "
    "FROM nodes n LEFT JOIN meetings m ON m.owner = n.id AND m.state = 'active' "
    "WHERE n.heartbeat_at >= :since "
    "GROUP BY n.id, n.roles, n.address, n.started_at, n.heartbeat_at ORDER BY n.id"
)
_STALE_OWNERS = Statement(
    "SELECT DISTINCT m.owner FROM meetings m WHERE m.state = 'active' AND m.live_count > 0 "
    "AND m.owner != '' AND NOT EXISTS "
    "(SELECT 1 FROM nodes n WHERE n.id = m.owner AND n.heartbeat_at >= :since)"
)


class NodeRepository:
    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def register(self, node_id: str, roles: str, address: str, now: float) -> None:
        params = {"id": node_id, "roles": roles, "address": address, "now": now}
        await self._db.execute(_REGISTER, params)

    async def beat(self, node_id: str, now: float) -> bool:
        """Renew the lease; False when the node was removed (declared dead) meanwhile."""
        return await self._db.execute(_BEAT, {"id": node_id, "now": now}) > 0

    async def leave(self, node_id: str) -> None:
        await self._db.execute(_LEAVE, {"id": node_id})

    async def live(self, since: float) -> list[NodeInfo]:
        """Nodes whose heartbeat is not older than `since`, with what they own."""
        rows = await self._db.fetch(_LIST, {"since": since})
        return [NodeInfo(**as_dict(row)) for row in rows]

    async def stale_owners(self, since: float) -> list[str]:
        """Owners of meetings with live calls whose heartbeat stopped before `since`."""
        return [row[0] for row in await self._db.fetch(_STALE_OWNERS, {"since": since})]
