"""What the web console lists: meetings, pushes, CDRs, apps and accounts, filtered and paged.

Every query takes a scope, `:sid`: an account holder's SID limits it to that account (joined
through the app that owns the row), `''` is an operator's view of every account. Filters that
are not set are passed as `''` (text) or as the widest range (times), never as NULL: asyncpg
must know every parameter's type from the statement itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from telemeeting.store.connection import Connection, as_dict
from telemeeting.store.sql import Statement

#: Times are Unix seconds; a filter left open spans every time.
NO_START = 0.0
NO_END = 1e12


@dataclass(frozen=True)
class Page:
    """One page of a listing: its rows and whether another page follows."""

    rows: list[dict[str, Any]]
    offset: int
    limit: int
    more: bool


@dataclass(frozen=True)
class Window:
    """What meetings and CDRs are both narrowed by. Each filter class names its fields once,
    as the statement's parameters; a field left at its default filters nothing."""

    app_id: str = ""
    env: str = ""
    since: float = NO_START
    until: float = NO_END


@dataclass(frozen=True)
class MeetingFilter(Window):
    state: str = ""


@dataclass(frozen=True)
class CdrFilter(Window):
    called: str = ""


@dataclass(frozen=True)
class EventFilter:
    state: str = ""
    app_id: str = ""
    meeting_id: str = ""
    event_id: str = ""


@dataclass(frozen=True)
class Overview:
    live_meetings: int
    live_calls: int
    pushes_pending: int
    pushes_dead: int


_SCOPE = "(:sid = '' OR a.account_sid = :sid)"
_OVERVIEW_MEETINGS = Statement(
    "SELECT COUNT(*), COALESCE(SUM(m.live_count), 0) FROM meetings m "
    f"JOIN apps a ON a.appid = m.app_id WHERE m.state = 'active' AND {_SCOPE}"
)
_OVERVIEW_PUSHES = Statement(
    "SELECT e.delivery, COUNT(*) FROM events e JOIN apps a ON a.appid = e.app_id "
    f"WHERE e.delivery IN ('pending', 'dead') AND {_SCOPE} GROUP BY e.delivery"
)
_MEETINGS = Statement(
    "SELECT m.id, m.meid, m.name, m.state, m.app_id, a.env, a.account_sid, m.created_at, "
    "m.started_at, m.ended_at, m.end_reason, m.live_count, m.leg_count "
    "FROM meetings m JOIN apps a ON a.appid = m.app_id "
    f"WHERE {_SCOPE} AND (:state = '' OR m.state = :state) "
    "AND (:app_id = '' OR m.app_id = :app_id) AND (:env = '' OR a.env = :env) "
    "AND m.created_at >= :since AND m.created_at < :until "
    "ORDER BY m.created_at DESC, m.id LIMIT :limit OFFSET :offset"
)
_MEETING_PLACE = Statement(
    "SELECT m.id, m.meid, m.app_id, a.env, a.account_sid FROM meetings m "
    "JOIN apps a ON a.appid = m.app_id WHERE m.id = :id"
)
_EVENTS = Statement(
    "SELECT e.id, e.app_id, e.meeting_id, m.meid, e.seq, e.kind, e.body, e.delivery, e.attempts, "
    "e.created_at, e.next_attempt_at, e.delivered_at, e.last_error, a.account_sid, a.env "
    "FROM events e JOIN apps a ON a.appid = e.app_id JOIN meetings m ON m.id = e.meeting_id "
    f"WHERE {_SCOPE} AND (:state = '' OR e.delivery = :state) "
    "AND (:app_id = '' OR e.app_id = :app_id) AND (:meeting_id = '' OR e.meeting_id = :meeting_id) "
    "AND (:event_id = '' OR e.id = :event_id) "
    "ORDER BY e.created_at DESC, e.seq DESC LIMIT :limit OFFSET :offset"
)
_CDRS = Statement(
    "SELECT c.id, c.account_sid, c.app_id, c.env, c.meeting_id, c.requestid, c.called, c.body, "
    "c.charge, c.created_at FROM cdrs c JOIN apps a ON a.appid = c.app_id "
    f"WHERE {_SCOPE} AND (:app_id = '' OR c.app_id = :app_id) AND (:env = '' OR c.env = :env) "
    "AND (:called = '' OR c.called = :called) "
    "AND c.created_at >= :since AND c.created_at < :until "
    "ORDER BY c.id DESC LIMIT :limit OFFSET :offset"
)
_APPS = Statement(
    "SELECT a.appid, a.account_sid, a.env, a.name, a.callback_url, a.ip_whitelist, a.online, "
    "a.features, a.caller_id, a.created_at, a.timezone FROM apps a "
    f"WHERE {_SCOPE} ORDER BY a.account_sid, a.created_at"
)
_ACCOUNTS = Statement(
    "SELECT sid, name, enabled, balance, created_at FROM accounts "
    "ORDER BY created_at DESC LIMIT :limit OFFSET :offset"
)


class ConsoleReads:
    """The console's listings, one statement each (one snapshot, no transaction held)."""

    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def overview(self, sid: str) -> Overview:
        meetings = await self._db.fetchone(_OVERVIEW_MEETINGS, {"sid": sid})
        pushes = {
            row[0]: int(row[1]) for row in await self._db.fetch(_OVERVIEW_PUSHES, {"sid": sid})
        }
        return Overview(
            live_meetings=int(meetings[0]) if meetings else 0,
            live_calls=int(meetings[1]) if meetings else 0,
            pushes_pending=pushes.get("pending", 0),
            pushes_dead=pushes.get("dead", 0),
        )

    async def meetings(
        self, sid: str, where: MeetingFilter | None = None, offset: int = 0, limit: int = 50
    ) -> Page:
        return await self._page(_MEETINGS, sid, where or MeetingFilter(), offset, limit)

    async def meeting_place(self, meeting_id: str) -> dict[str, Any] | None:
        """Which app, environment and account a meeting belongs to (None: no such meeting)."""
        row = await self._db.fetchone(_MEETING_PLACE, {"id": meeting_id})
        return as_dict(row) if row else None

    async def events(
        self, sid: str, where: EventFilter | None = None, offset: int = 0, limit: int = 50
    ) -> Page:
        return await self._page(_EVENTS, sid, where or EventFilter(), offset, limit)

    async def cdrs(
        self, sid: str, where: CdrFilter | None = None, offset: int = 0, limit: int = 50
    ) -> Page:
        return await self._page(_CDRS, sid, where or CdrFilter(), offset, limit)

    async def apps(self, sid: str) -> list[dict[str, Any]]:
        rows = [as_dict(row) for row in await self._db.fetch(_APPS, {"sid": sid})]
        for row in rows:
            row["online"] = bool(row["online"])
        return rows

    async def accounts(self, offset: int = 0, limit: int = 50) -> Page:
        page = await self._page(_ACCOUNTS, "", None, offset, limit)
        for row in page.rows:
            row["enabled"] = bool(row["enabled"])
        return page

    async def _page(
        self,
        statement: Statement,
        sid: str,
        where: Window | EventFilter | None,
        offset: int,
        limit: int,
    ) -> Page:
        """One page of `statement` in scope `sid`, its filters the fields of the dataclass
        `where` (None: none); one more row than asked for tells whether a next page exists."""
        filters = asdict(where) if where is not None else {}
        params = {**filters, "sid": sid, "offset": offset, "limit": limit + 1}
        rows = await self._db.fetch(statement, params)
        found = [as_dict(row) for row in rows]
        return Page(found[:limit], offset, limit, len(found) > limit)
