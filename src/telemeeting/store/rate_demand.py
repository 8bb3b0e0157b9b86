"""Each API process's recent request rate per account, shared through the database."""

from __future__ import annotations

from collections.abc import Mapping

from telemeeting.store.connection import Connection
from telemeeting.store.sql import Statement

_UPSERT = Statement(
    "INSERT INTO rate_demand (node_id, account_sid, demand, updated_at) "
    "VALUES (:node_id, :account_sid, :demand, :now) ON CONFLICT (node_id, account_sid) "
    "DO UPDATE SET demand = excluded.demand, updated_at = excluded.updated_at"
)
_TOTALS = Statement(
    "SELECT account_sid, SUM(demand) AS total FROM rate_demand WHERE updated_at >= :since "
    "GROUP BY account_sid"
)
_API_NODES = Statement(
    "SELECT COUNT(*) FROM nodes WHERE heartbeat_at >= :since AND roles LIKE '%api%'"
)
_FORGET = Statement("DELETE FROM rate_demand WHERE updated_at < :before")


class RateDemandRepository:
    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def publish(self, node_id: str, demand: Mapping[str, float], now: float) -> None:
        rows = [
            {"node_id": node_id, "account_sid": sid, "demand": rate, "now": now}
            for sid, rate in demand.items()
        ]
        if rows:
            await self._db.execute_many(_UPSERT, rows)

    async def totals(self, since: float) -> dict[str, float]:
        """Every process's recent demand, summed per account."""
        rows = await self._db.fetch(_TOTALS, {"since": since})
        return {row["account_sid"]: float(row["total"]) for row in rows}

    async def api_nodes(self, since: float) -> int:
        return int(await self._db.scalar(_API_NODES, {"since": since}))

    async def forget(self, before: float) -> None:
        await self._db.execute(_FORGET, {"before": before})
