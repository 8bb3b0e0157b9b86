"""Removing what ended meetings left behind, in batches (service/retention.py drives it).

A meeting is removed with its legs, pushes (and their delivery attempts), leftover orders,
speaker state and media settings once it ended before the cutoff, none of its pushes is still
pending delivery and none of its recordings is still kept (`telemeeting recordings purge`
removes those at their own retention). CDRs (the pull, `cdrs`) and the balance's ledger are
separate tables without references to these rows and are never touched here: a CDR not yet
pulled, or a charge, outlives its meeting.

One batch is one transaction. On PostgreSQL the batch's meetings are locked with SKIP LOCKED,
so two clocks pruning at once take different meetings.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from telemeeting.store.connection import Connection
from telemeeting.store.sql import Dialect, Statement

_PRUNABLE = (
    "FROM meetings m WHERE m.ended_at < :cutoff AND m.state = 'ended' "
    "AND NOT EXISTS (SELECT 1 FROM events e WHERE e.meeting_id = m.id "
    "AND e.delivery = 'pending') "
    "AND NOT EXISTS (SELECT 1 FROM recordings r WHERE r.meeting_id = m.id)"
)
_DUE = Statement(
    f"SELECT m.id {_PRUNABLE} ORDER BY m.ended_at LIMIT :limit",
    postgres=f"SELECT m.id {_PRUNABLE} ORDER BY m.ended_at LIMIT :limit "
    "FOR UPDATE OF m SKIP LOCKED",
)
_COUNT = Statement(f"SELECT COUNT(*) {_PRUNABLE}")


def _in_ids(template: str) -> Statement:
    """`template` with `{ids}` standing for "is one of the `:ids`": `= ANY(:ids)` on PostgreSQL,
    a JSON array unpacked by json_each on SQLite (one statement text for any batch size)."""
    return Statement(
        "",
        postgres=template.format(ids="= ANY(:ids)"),
        sqlite=template.format(ids="IN (SELECT value FROM json_each(:ids))"),
    )


#: Children first (SQLite enforces the foreign keys of events and legs to meetings).
_DELETES: tuple[tuple[str, Statement], ...] = (
    (
        "delivery_attempts",
        _in_ids(
            "DELETE FROM delivery_attempts WHERE event_id IN "
            "(SELECT id FROM events WHERE meeting_id {ids})"
        ),
    ),
    ("events", _in_ids("DELETE FROM events WHERE meeting_id {ids}")),
    ("legs", _in_ids("DELETE FROM legs WHERE meeting_id {ids}")),
    ("orders", _in_ids("DELETE FROM orders WHERE meeting_id {ids}")),
    ("speakers", _in_ids("DELETE FROM speakers WHERE meeting_id {ids}")),
    ("meeting_media", _in_ids("DELETE FROM meeting_media WHERE meeting_id {ids}")),
    ("meeting_spans", _in_ids("DELETE FROM meeting_spans WHERE meeting_id {ids}")),
    ("meetings", _in_ids("DELETE FROM meetings WHERE id {ids}")),
)


@dataclass
class Pruned:
    """Rows removed, by table."""

    meetings: int = 0
    legs: int = 0
    events: int = 0
    delivery_attempts: int = 0
    orders: int = 0
    speakers: int = 0
    meeting_media: int = 0
    meeting_spans: int = 0

    def add(self, other: Pruned) -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)

    @property
    def rows(self) -> int:
        return sum(vars(self).values())


class RetentionRepository:
    def __init__(self, connection: Connection, dialect: Dialect) -> None:
        self._db = connection
        self._dialect = dialect

    async def due(self, cutoff: float, limit: int) -> list[str]:
        """Up to `limit` prunable meetings that ended before `cutoff`, oldest first (locked
        until the transaction ends on PostgreSQL; others' locked ones are skipped)."""
        rows = await self._db.fetch(_DUE, {"cutoff": cutoff, "limit": limit})
        return [str(row[0]) for row in rows]

    async def count(self, cutoff: float) -> int:
        """How many meetings are prunable now (for progress; a scan of the ended ones)."""
        return int(await self._db.scalar(_COUNT, {"cutoff": cutoff}))

    async def prune(self, meeting_ids: Sequence[str]) -> Pruned:
        """Remove these meetings and what belongs to them (the caller chose them with `due`)."""
        pruned = Pruned()
        if not meeting_ids:
            return pruned
        ids: Any = list(meeting_ids)
        if self._dialect is Dialect.SQLITE:
            ids = json.dumps(ids)
        for table, statement in _DELETES:
            setattr(pruned, table, await self._db.execute(statement, {"ids": ids}))
        return pruned
