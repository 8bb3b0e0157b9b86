"""Repositories: the only code that turns rows into domain objects and back.

Every statement is a constant prepared once per dialect (store/sql.py). A meeting is loaded
with only the legs a change needs (`LegSelection`): an invitation never reads the whole
meeting, so its cost does not grow with the meeting's size.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from telemeeting.domain.model import EndReason, Leg, LegState, Meeting, MeetingState
from telemeeting.store.connection import Connection, Row
from telemeeting.store.records import Account, App, StoredEvent
from telemeeting.store.speakers import parse_talking
from telemeeting.store.sql import Dialect, Statement, insert_columns, update_columns

_MEETING_FIELDS = tuple(
    f.name for f in dataclasses.fields(Meeting) if f.name not in ("legs", "events")
)
_MEETING_COLUMNS = (*_MEETING_FIELDS, "next_seq", "leg_count", "owner")
_MEETING_FIELD_COUNT = len(_MEETING_FIELDS)
_LEG_FIELDS = tuple(f.name for f in dataclasses.fields(Leg))
#: `node`, last: the server carrying the leg ("" the meeting's owner; issue 16).
_LEG_COLUMNS = (*_LEG_FIELDS, "meeting_id", "position", "node")
_LEG_NODE = len(_LEG_COLUMNS) - 1
#: Where `MeetingRepository._READ`'s two media columns and then the leg's columns start.
_READ_MEDIA = len(_MEETING_COLUMNS)
_READ_LEGS = _READ_MEDIA + 2
_LEG_FIELD_COUNT = len(_LEG_FIELDS)
_LEG_STATE = _LEG_FIELDS.index("state")
_LEG_END = _LEG_FIELDS.index("end_reason")
_LEG_STATES = {state.value: state for state in LegState}
_END_REASONS = {reason.value: reason for reason in EndReason}
_ACCOUNT_FIELDS = tuple(f.name for f in dataclasses.fields(Account))
_APP_FIELDS = tuple(f.name for f in dataclasses.fields(App))
_EVENT_FIELDS = tuple(f.name for f in dataclasses.fields(StoredEvent))
_EVENT_COLUMNS = (*_EVENT_FIELDS, "next_attempt_at", "pending_since", "last_error")
_ENDED = MeetingState.ENDED.value
_GONE = LegState.DISCONNECT.value


def _record(cls: type, row: Row, names: Sequence[str], flags: Sequence[str] = ()) -> Any:
    values = {name: row[name] for name in names}
    for flag in flags:
        values[flag] = bool(values[flag])
    return cls(**values)


class AccountRepository:
    _GET = Statement(f"SELECT {', '.join(_ACCOUNT_FIELDS)} FROM accounts WHERE sid = :sid")
    _NAMED = Statement(
        f"SELECT {', '.join(_ACCOUNT_FIELDS)} FROM accounts WHERE name = :name ORDER BY created_at"
    )
    _COUNT = Statement("SELECT COUNT(*) FROM accounts")

    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def get(self, sid: str) -> Account | None:
        row = await self._db.fetchone(self._GET, {"sid": sid})
        return _record(Account, row, _ACCOUNT_FIELDS, ("enabled",)) if row else None

    async def add(self, account: Account) -> None:
        await self._db.execute(insert_columns("accounts", _ACCOUNT_FIELDS), vars(account))

    async def update(self, sid: str, **values: Any) -> bool:
        statement = update_columns("accounts", tuple(values), "sid")
        return await self._db.execute(statement, {**values, "sid": sid}) > 0

    async def named(self, name: str) -> list[Account]:
        """Accounts with this label, oldest first."""
        rows = await self._db.fetch(self._NAMED, {"name": name})
        return [_record(Account, row, _ACCOUNT_FIELDS, ("enabled",)) for row in rows]

    async def count(self) -> int:
        return int(await self._db.scalar(self._COUNT))


class AppRepository:
    _GET = Statement(f"SELECT {', '.join(_APP_FIELDS)} FROM apps WHERE appid = :appid")
    _OF_ACCOUNT = Statement(
        f"SELECT {', '.join(_APP_FIELDS)} FROM apps WHERE account_sid = :sid ORDER BY created_at"
    )

    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def get(self, appid: str) -> App | None:
        row = await self._db.fetchone(self._GET, {"appid": appid})
        return _record(App, row, _APP_FIELDS, ("online",)) if row else None

    async def add(self, app: App) -> None:
        await self._db.execute(insert_columns("apps", _APP_FIELDS), vars(app))

    async def of_account(self, account_sid: str) -> list[App]:
        rows = await self._db.fetch(self._OF_ACCOUNT, {"sid": account_sid})
        return [_record(App, row, _APP_FIELDS, ("online",)) for row in rows]

    async def update(self, appid: str, **values: Any) -> bool:
        statement = update_columns("apps", tuple(values), "appid")
        return await self._db.execute(statement, {**values, "appid": appid}) > 0


_SELECT_LEGS = f"SELECT {', '.join(_LEG_COLUMNS)} FROM legs WHERE meeting_id = :meeting_id"


def _any_of(column: str) -> Statement:
    """Legs whose `column` is one of the `:values` list: `= ANY` on PostgreSQL, a JSON array
    unpacked by `json_each` on SQLite (one statement text for any number of values)."""
    return Statement(
        "",
        postgres=f"{_SELECT_LEGS} AND {column} = ANY(:values) ORDER BY position",
        sqlite=f"{_SELECT_LEGS} AND {column} IN (SELECT value FROM json_each(:values)) "
        "ORDER BY position",
    )


@dataclass(frozen=True)
class LegSelection:
    """Which of a meeting's legs to load with it."""

    statement: Statement | None
    values: tuple[str, ...] = ()

    def params(self, meeting_id: str, dialect: Dialect) -> dict[str, Any]:
        if self.statement is None or "values" not in self.statement.prepared(dialect).names:
            return {"meeting_id": meeting_id}
        values: Any = list(self.values)
        if dialect is Dialect.SQLITE:
            values = json.dumps(values)
        return {"meeting_id": meeting_id, "values": values}


NO_LEGS = LegSelection(None)
ALL_LEGS = LegSelection(Statement(f"{_SELECT_LEGS} ORDER BY position"))
LIVE_LEGS = LegSelection(Statement(f"{_SELECT_LEGS} AND state != '{_GONE}' ORDER BY position"))
_BY_ID = _any_of("id")
_BY_NODE = _any_of("node")
_LIVE_BY_PHONE = Statement(
    "",
    postgres=f"{_SELECT_LEGS} AND state != '{_GONE}' AND phone = ANY(:values) ORDER BY position",
    sqlite=f"{_SELECT_LEGS} AND state != '{_GONE}' AND phone IN "
    "(SELECT value FROM json_each(:values)) ORDER BY position",
)


def legs_with_ids(ids: Sequence[str]) -> LegSelection:
    """The legs a batch of carrier reports is about (whatever their state)."""
    return LegSelection(_BY_ID, tuple(ids))


def legs_on(node: str) -> LegSelection:
    """The legs carried by one server other than the owner (issue 16: that server died)."""
    return LegSelection(_BY_NODE, (node,))


def live_legs_of(phones: Sequence[str]) -> LegSelection:
    """The live legs of these phones: what an invitation or a member action needs."""
    return LegSelection(_LIVE_BY_PHONE, tuple(phones))


_MEETING_SELECT = f"SELECT {', '.join(_MEETING_COLUMNS)} FROM meetings"


@dataclass(frozen=True)
class MeetingRead:
    """A meeting as queries show it, with its in-call media state."""

    meeting: Meeting
    #: The legs talking now; None for a meeting without speaker events.
    talking: frozenset[str] | None
    #: Whether the meeting has ever been recorded.
    recorded: bool


class MeetingRepository:
    """Loads meetings (with the selected legs) under a row lock, saves only what changed."""

    _GET = Statement(
        f"{_MEETING_SELECT} WHERE id = :id", postgres=f"{_MEETING_SELECT} WHERE id = :id FOR UPDATE"
    )
    _FIND = f"{_MEETING_SELECT} WHERE app_id = :app_id AND meid = :meid "
    _FIND += f"ORDER BY (state = '{_ENDED}') ASC, created_at DESC LIMIT 1"
    _FIND_LOCKED = Statement(_FIND, postgres=f"{_FIND} FOR UPDATE")
    _FIND_UNLOCKED = Statement(_FIND)
    # A meeting with every leg in one statement: one snapshot without a transaction.
    # The meeting's in-call media state rides along as two scalar subqueries, so a query of a
    # meeting that never recorded and has no speaker events stays one statement (a round trip).
    _READ = Statement(
        f"SELECT {', '.join('m.' + c for c in _MEETING_COLUMNS)}, "
        "(SELECT s.legs FROM speakers s WHERE s.meeting_id = m.id), "
        "EXISTS (SELECT 1 FROM recordings r WHERE r.meeting_id = m.id), "
        f"{', '.join('l.' + c for c in _LEG_COLUMNS)} "
        "FROM meetings m LEFT JOIN legs l ON l.meeting_id = m.id "
        "WHERE m.id = (SELECT id FROM meetings WHERE app_id = :app_id AND meid = :meid "
        f"ORDER BY (state = '{_ENDED}') ASC, created_at DESC LIMIT 1) ORDER BY l.position"
    )
    _ROOM_TAKEN = Statement(
        f"SELECT 1 FROM meetings WHERE app_id = :app_id AND meid = :meid AND state != '{_ENDED}'"
    )
    _EXPIRED = Statement(
        "SELECT id FROM meetings WHERE state = 'active' AND expires_at <= :now LIMIT :limit"
    )
    _BOOKED = Statement(
        "SELECT id FROM meetings WHERE state = 'booked' AND book_at <= :now LIMIT :limit"
    )
    _WITH_LIVE_LEGS = Statement(
        "SELECT id FROM meetings WHERE state = 'active' AND owner = :owner AND live_count > 0"
    )
    _ASSIGN = Statement("UPDATE meetings SET owner = :owner WHERE id = :id")

    def __init__(self, connection: Connection, dialect: Dialect) -> None:
        self._db = connection
        self._dialect = dialect
        self._meetings: dict[str, dict[str, Any]] = {}  # meeting id -> row values when loaded
        self._legs: dict[str, dict[str, Any]] = {}  # leg id -> row values when loaded
        self._leg_nodes: dict[str, str] = {}  # leg id -> server carrying it, when not the owner

    async def get(self, meeting_id: str, legs: LegSelection = LIVE_LEGS) -> Meeting | None:
        """The meeting, locked, with the selected legs (by default the live ones)."""
        return await self._load(await self._db.fetchone(self._GET, {"id": meeting_id}), legs)

    async def find(
        self, app_id: str, meid: str, legs: LegSelection = LIVE_LEGS, lock: bool = True
    ) -> Meeting | None:
        """The app's open meeting with this room number, else the latest ended one; `lock`
        holds its row until the transaction ends (for a change)."""
        statement = self._FIND_LOCKED if lock else self._FIND_UNLOCKED
        row = await self._db.fetchone(statement, {"app_id": app_id, "meid": meid})
        return await self._load(row, legs, track=lock)

    async def read(self, app_id: str, meid: str) -> Meeting | None:
        """Like `find` with every leg, unlocked and untracked, in one statement (for reads)."""
        found = await self.read_with_media(app_id, meid)
        return found.meeting if found is not None else None

    async def read_with_media(self, app_id: str, meid: str) -> MeetingRead | None:
        """`read`, and whether the meeting has speaker events (who talks) or recordings."""
        rows = await self._db.fetch(self._READ, {"app_id": app_id, "meid": meid})
        if not rows:
            return None
        first = tuple(rows[0])
        meeting = await self._load(first[:_READ_MEDIA], NO_LEGS, track=False)
        assert meeting is not None
        for row in rows:
            values = tuple(row)[_READ_LEGS:]
            if values[0] is not None:
                meeting.legs.append(_leg(values))
        talking, recorded = first[_READ_MEDIA], first[_READ_MEDIA + 1]
        return MeetingRead(
            meeting, None if talking is None else parse_talking(str(talking)), bool(recorded)
        )

    async def room_taken(self, app_id: str, meid: str) -> bool:
        found = await self._db.scalar(self._ROOM_TAKEN, {"app_id": app_id, "meid": meid})
        return found is not None

    async def ids_due(self, now: float, limit: int = 100) -> tuple[list[str], list[str]]:
        """Meetings past their maximum duration, and booked meetings whose time has come."""
        params = {"now": now, "limit": limit}
        expired = await self._db.fetch(self._EXPIRED, params)
        booked = await self._db.fetch(self._BOOKED, params)
        return [row[0] for row in expired], [row[0] for row in booked]

    async def ids_with_live_legs(self, owner: str) -> list[str]:
        """Active meetings of `owner` that still have legs ringing or joined."""
        return [row[0] for row in await self._db.fetch(self._WITH_LIVE_LEGS, {"owner": owner})]

    async def assign(self, meeting_id: str, owner: str) -> None:
        """Make `owner` the node that carries the meeting's calls."""
        await self._db.execute(self._ASSIGN, {"id": meeting_id, "owner": owner})
        if meeting_id in self._meetings:
            self._meetings[meeting_id]["owner"] = owner

    def owner_of(self, meeting_id: str) -> str:
        """The owner of a meeting loaded in this transaction."""
        return str(self._meetings[meeting_id]["owner"])

    def node_of_leg(self, leg_id: str) -> str:
        """The server carrying a leg loaded (or placed) in this transaction; "" the owner."""
        return self._leg_nodes.get(leg_id, "")

    def place_leg(self, leg_id: str, node: str) -> None:
        """A new leg (not yet saved) is carried by `node`, not by the meeting's owner."""
        if node:
            self._leg_nodes[leg_id] = node

    async def _load(
        self, row: Row | None, legs: LegSelection, track: bool = True
    ) -> Meeting | None:
        """The meeting and its selected legs; `track` remembers their values so that `save`
        writes only what changed (a read-only load skips it)."""
        if row is None:
            return None
        # The SELECTs list the dataclass fields first and in order: construct positionally.
        meeting = Meeting(*tuple(row)[:_MEETING_FIELD_COUNT])
        meeting.state = MeetingState(meeting.state)
        meeting.ever_joined = bool(meeting.ever_joined)
        meeting.dialin = bool(meeting.dialin)
        if track:
            self._meetings[meeting.id] = dict(zip(_MEETING_COLUMNS, tuple(row), strict=True))
            self._meetings[meeting.id]["ever_joined"] = meeting.ever_joined
        if legs.statement is None:
            return meeting
        rows = await self._db.fetch(legs.statement, legs.params(meeting.id, self._dialect))
        for leg_row in rows:
            values = tuple(leg_row)
            leg = _leg(values)
            meeting.legs.append(leg)
            if track:
                self._legs[leg.id] = _leg_values(leg)
                if values[_LEG_NODE]:
                    self._leg_nodes[leg.id] = str(values[_LEG_NODE])
        return meeting

    def reserve_seqs(self, meeting_id: str, count: int) -> int:
        """The first of `count` consecutive sequence numbers; written by the next `save`.

        Safe because the meeting's row is locked for the whole transaction.
        """
        loaded = self._meetings[meeting_id]
        first = int(loaded.get("pending_next_seq", loaded["next_seq"]))
        loaded["pending_next_seq"] = first + count
        return first

    async def add(self, meeting: Meeting, owner: str = "") -> None:
        values = {**_meeting_values(meeting), "next_seq": 1, "leg_count": 0, "owner": owner}
        await self._db.execute(insert_columns("meetings", _MEETING_COLUMNS), values)
        self._meetings[meeting.id] = values
        await self.save(meeting)

    async def save(self, meeting: Meeting) -> None:
        """Write what changed since load: one UPDATE of the meeting at most, new legs at once,
        and one batch per shape of leg change (a carrier report batch answers many legs alike:
        one `executemany`, which asyncpg sends as one round trip, not one statement per leg)."""
        before = self._meetings[meeting.id]
        new_legs: list[dict[str, Any]] = []
        changed_legs: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for leg in meeting.legs:
            leg_values = _leg_values(leg)
            previous = self._legs.get(leg.id)
            if previous is None:
                position = before["leg_count"] + len(new_legs)
                node = self._leg_nodes.get(leg.id, "")
                new_legs.append(
                    {**leg_values, "meeting_id": meeting.id, "position": position, "node": node}
                )
            elif previous != leg_values:
                changed_leg = {k: v for k, v in leg_values.items() if previous[k] != v}
                changed_legs.setdefault(tuple(changed_leg), []).append(
                    {**changed_leg, "id": leg.id}
                )
            self._legs[leg.id] = leg_values
        for columns, rows in changed_legs.items():
            statement = update_columns("legs", columns, "id")
            if len(rows) == 1:
                await self._db.execute(statement, rows[0])
            else:
                await self._db.execute_many(statement, rows)
        if new_legs:
            await self._db.execute_many(insert_columns("legs", _LEG_COLUMNS), new_legs)
        values = _meeting_values(meeting)
        changed = {k: v for k, v in values.items() if before.get(k) != v}
        if "pending_next_seq" in before:
            changed["next_seq"] = before.pop("pending_next_seq")
        if new_legs:
            changed["leg_count"] = before["leg_count"] + len(new_legs)
        if changed:
            statement = update_columns("meetings", tuple(changed), "id")
            await self._db.execute(statement, {**changed, "id": meeting.id})
            before.update(changed)


def _leg(values: tuple[Any, ...]) -> Leg:
    """A leg from a row whose first columns are the dataclass fields, in order."""
    leg = Leg(*values[:_LEG_FIELD_COUNT])
    leg.state = _LEG_STATES[values[_LEG_STATE]]
    leg.end_reason = _END_REASONS[values[_LEG_END]] if values[_LEG_END] else None
    leg.muted = bool(leg.muted)
    leg.held = bool(leg.held)
    return leg


def _leg_values(leg: Leg) -> dict[str, Any]:
    values = {name: getattr(leg, name) for name in _LEG_FIELDS}
    values["state"] = leg.state.value
    values["end_reason"] = leg.end_reason.value if leg.end_reason else None
    return values


def _meeting_values(meeting: Meeting) -> dict[str, Any]:
    values = {name: getattr(meeting, name) for name in _MEETING_FIELDS}
    values["state"] = meeting.state.value
    return values


class EventRepository:
    _FOR_MEETING = Statement(
        f"SELECT {', '.join(_EVENT_FIELDS)} FROM events WHERE meeting_id = :meeting_id "
        "AND seq > :after ORDER BY seq LIMIT :limit"
    )

    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def add_all(self, events: list[StoredEvent], pushed: bool) -> None:
        """Store pushes; `pushed` ones are due for delivery at once."""
        await self._db.execute_many(
            insert_columns("events", _EVENT_COLUMNS),
            [
                {
                    **vars(event),
                    "next_attempt_at": event.created_at if pushed else None,
                    "pending_since": event.created_at if pushed else None,
                    "last_error": "",
                }
                for event in events
            ],
        )

    async def for_meeting(self, meeting_id: str, after: int, limit: int) -> list[StoredEvent]:
        rows = await self._db.fetch(
            self._FOR_MEETING, {"meeting_id": meeting_id, "after": after, "limit": limit}
        )
        return [_record(StoredEvent, row, _EVENT_FIELDS) for row in rows]
