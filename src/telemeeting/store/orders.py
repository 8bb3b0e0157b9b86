"""Carrier orders as rows: written with the change that causes them, claimed by the media node
they are addressed to: `node` "" is the meeting's owner at claim time (so orders follow a
take-over), another id is that server (issue 16: a leg's orders go to the server carrying it).

A claim deletes the orders it returns in the claiming transaction: an order is carried out at
most once. One that was claimed by a node that then died is covered by failover, which ends the
legs that node held (their calls died with it) instead of replaying half-done orders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from telemeeting.store.connection import Connection
from telemeeting.store.sql import Statement


@dataclass(frozen=True)
class StoredOrder:
    id: int
    meeting_id: str
    kind: str
    body: str
    #: The server the order is for; "" the meeting's owner.
    node: str = ""


_INSERT = Statement(
    "INSERT INTO orders (meeting_id, kind, body, created_at, node) "
    "VALUES (:meeting_id, :kind, :body, :created_at, :node)"
)
_MINE = (
    "SELECT o.id FROM orders o JOIN meetings m ON m.id = o.meeting_id "
    "WHERE (o.node = '' AND m.owner = :owner) OR o.node = :owner"
)
_CLAIM = Statement(
    f"DELETE FROM orders WHERE id IN ({_MINE} ORDER BY o.id LIMIT :limit) "
    "RETURNING id, meeting_id, kind, body",
    postgres=f"DELETE FROM orders WHERE id IN ({_MINE} ORDER BY o.id LIMIT :limit "
    "FOR UPDATE OF o SKIP LOCKED) RETURNING id, meeting_id, kind, body",
)
_ADDRESSED = (
    "SELECT id FROM orders WHERE node = :node AND meeting_id = :meeting_id AND kind = :kind "
    "ORDER BY id LIMIT 10"
)
_CLAIM_ADDRESSED = Statement(
    f"DELETE FROM orders WHERE id IN ({_ADDRESSED}) RETURNING id, meeting_id, kind, body",
    postgres=f"DELETE FROM orders WHERE id IN ({_ADDRESSED} FOR UPDATE SKIP LOCKED) "
    "RETURNING id, meeting_id, kind, body",
)
_DROP_FOR_MEETING = Statement("DELETE FROM orders WHERE meeting_id = :meeting_id")
_FOR_MEETING = Statement(
    "SELECT id, meeting_id, kind, body FROM orders WHERE meeting_id = :meeting_id ORDER BY id"
)
_ORPHANED = Statement(
    "SELECT DISTINCT o.meeting_id FROM orders o JOIN meetings m ON m.id = o.meeting_id "
    "WHERE m.owner = ''"
)
_BACKLOG = Statement("SELECT COUNT(*) FROM orders")
_DROP_FOR_NODE = Statement("DELETE FROM orders WHERE node = :node")


class OrderRepository:
    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def add(self, orders: Sequence[StoredOrder], now: float) -> None:
        if orders:
            await self._db.execute_many(
                _INSERT,
                [
                    {
                        "meeting_id": o.meeting_id,
                        "kind": o.kind,
                        "body": o.body,
                        "created_at": now,
                        "node": o.node,
                    }
                    for o in orders
                ],
            )

    async def claim(self, owner: str, limit: int) -> list[StoredOrder]:
        """The oldest orders for `owner` (addressed to it, or to the owner of a meeting it owns),
        removed from the table, in order."""
        rows = await self._db.fetch(_CLAIM, {"owner": owner, "limit": limit})
        found = [StoredOrder(r["id"], r["meeting_id"], r["kind"], r["body"]) for r in rows]
        return sorted(found, key=lambda order: order.id)

    async def claim_addressed(self, node: str, meeting_id: str, kind: str) -> list[StoredOrder]:
        """The orders of one kind and meeting addressed to `node`, removed, in order: what a
        server waits for while its order loop is busy (service/spans.py, a link's reply)."""
        params = {"node": node, "meeting_id": meeting_id, "kind": kind}
        rows = await self._db.fetch(_CLAIM_ADDRESSED, params)
        found = [StoredOrder(r["id"], r["meeting_id"], r["kind"], r["body"], node) for r in rows]
        return sorted(found, key=lambda order: order.id)

    async def drop_for_meeting(self, meeting_id: str) -> int:
        """Forget a meeting's unclaimed orders (its calls are being ended another way)."""
        return await self._db.execute(_DROP_FOR_MEETING, {"meeting_id": meeting_id})

    async def for_meeting(self, meeting_id: str) -> list[StoredOrder]:
        """The meeting's unclaimed orders, oldest first."""
        rows = await self._db.fetch(_FOR_MEETING, {"meeting_id": meeting_id})
        return [StoredOrder(r["id"], r["meeting_id"], r["kind"], r["body"]) for r in rows]

    async def orphaned(self) -> list[str]:
        """Meetings with orders but no owner (placed while no media node was alive)."""
        return [row[0] for row in await self._db.fetch(_ORPHANED)]

    async def drop_for_node(self, node: str) -> int:
        """Forget the orders addressed to a server that is gone (its calls died with it)."""
        return await self._db.execute(_DROP_FOR_NODE, {"node": node})

    async def backlog(self) -> int:
        return int(await self._db.scalar(_BACKLOG))
