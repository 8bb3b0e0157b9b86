"""The outbox: claiming due pushes in per-leg order, and recording how each attempt went.

A claim is a lease: the claimed events' `next_attempt_at` moves past the delivery timeout, so
an event whose dispatcher died mid-delivery becomes due again by itself. On PostgreSQL several
dispatchers claim with `FOR UPDATE SKIP LOCKED`; on SQLite the write lock serialises claims.
Claims are fair between apps (a bound per app, round robin), and outcomes are settled in batches.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from telemeeting.store.attempts import Attempt, AttemptRepository
from telemeeting.store.connection import Connection, as_dict
from telemeeting.store.sql import Dialect, Statement

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"
STORED = "stored"  # kept and queryable, never pushed (sandbox, or no callback URL)
STATES = (PENDING, DELIVERED, DEAD, STORED)


@dataclass(frozen=True)
class Delivery:
    """One claimed push, with what is needed to send it."""

    event_id: str
    meeting_id: str
    seq: int
    kind: str
    body: str
    attempt: int
    pending_since: float
    callback_url: str
    secret: str
    app_id: str = ""


@dataclass(frozen=True)
class EventSummary:
    id: str
    app_id: str
    meeting_id: str
    seq: int
    kind: str
    delivery: str
    attempts: int
    created_at: float
    next_attempt_at: float | None
    delivered_at: float | None
    last_error: str


@dataclass(frozen=True)
class Outcome:
    """How one attempt went: `state` DELIVERED (at = when), PENDING (a retry at `at`) or DEAD."""

    delivery: Delivery
    state: str
    at: float | None = None
    error: str = ""
    #: The attempt itself, kept in delivery_attempts (store/attempts.py) for the console.
    started_at: float | None = None
    status: int | None = None
    latency_ms: float | None = None


# An event is due when it is pending, its time has come, and it is first in its stream: no
# earlier pending event of the same leg (or, for meeting events, no earlier pending meeting event)
# of the same meeting. Two NOT EXISTS rather than one with `OR … IS NULL`, so that both probe the
# (meeting_id, leg_id, seq) index on either database.
_DUE = """
  e.delivery = 'pending' AND e.next_attempt_at <= :now
  AND NOT EXISTS (
    SELECT 1 FROM events p
    WHERE p.meeting_id = e.meeting_id AND p.leg_id = e.leg_id AND p.seq < e.seq
      AND p.delivery = 'pending')
  AND (e.leg_id IS NOT NULL OR NOT EXISTS (
    SELECT 1 FROM events p
    WHERE p.meeting_id = e.meeting_id AND p.leg_id IS NULL AND p.seq < e.seq
      AND p.delivery = 'pending'))
"""


def host_key(callback_url: str) -> str:
    """What the in-flight bound per receiver host counts by: the URL up to its path (scheme,
    host and port as written); the claim computes the same in SQL (`_HOST`)."""
    start = callback_url.find("//")
    if start < 0:
        return callback_url
    end = callback_url.find("/", start + 2)
    return callback_url if end < 0 else callback_url[:end]


def _host_sql(find: str, url: str = "a.callback_url") -> str:
    """`host_key` in SQL; `find` is the dialect's substring search (instr or strpos)."""
    after = f"{find}(substr({url}, {find}({url}, '//') + 2), '/')"
    return (
        f"CASE WHEN {find}({url}, '//') = 0 OR {after} = 0 THEN {url} "
        f"ELSE substr({url}, 1, {find}({url}, '//') + {after}) END"
    )


# Fair claims. `:app_rooms` and `:host_rooms` are JSON objects {app or host: free slots} for the
# apps and receiver hosts the dispatcher already has pushes in flight for (0: at its bound,
# skipped); any other takes up to `:per_app` and `:per_host`. The scan skips apps and hosts at
# their bound before it counts its `:scan` oldest due events, so no backlog, however old, hides
# another app's events; then each app's events take turns (rank 1 of every app before rank 2 of
# any: round robin), within the room of the app and then of its host.
_RANKED = """
WITH heads AS (
  SELECT e.id, e.app_id, e.next_attempt_at, {host} AS host
  FROM events e JOIN apps a ON a.appid = e.app_id
  WHERE {due}
    AND e.app_id NOT IN ({full_apps})
    AND {host} NOT IN ({full_hosts})
  ORDER BY e.next_attempt_at
  LIMIT :scan
), by_app AS (
  SELECT id, app_id, host, next_attempt_at,
         row_number() OVER (PARTITION BY app_id ORDER BY next_attempt_at, id) AS turn
  FROM heads
), fits AS (
  SELECT id, host, next_attempt_at, turn FROM by_app
  WHERE turn <= coalesce({app_room}, :per_app)
), by_host AS (
  SELECT id, host, next_attempt_at, turn,
         row_number() OVER (PARTITION BY host ORDER BY turn, next_attempt_at, id) AS host_turn
  FROM fits
)"""
_CLAIMED_COLUMNS = (
    "e.id, e.meeting_id, e.seq, e.kind, e.body, e.attempts, e.pending_since, e.created_at, "
    "e.app_id, a.callback_url, c.auth_token"
)
# SQLite: the claim, then the lease of what it found (`_LEASE`), statements without round trips.
_CLAIM_SQLITE = (
    _RANKED.format(
        host=_host_sql("instr"),
        due=_DUE,
        full_apps="SELECT key FROM json_each(:app_rooms) WHERE value <= 0",
        full_hosts="SELECT key FROM json_each(:host_rooms) WHERE value <= 0",
        app_room="(SELECT value FROM json_each(:app_rooms) WHERE key = app_id)",
    )
    + f"""
SELECT {_CLAIMED_COLUMNS}
FROM by_host r
JOIN events e ON e.id = r.id
JOIN apps a ON a.appid = e.app_id
JOIN accounts c ON c.sid = a.account_sid
WHERE r.host_turn <= coalesce((SELECT value FROM json_each(:host_rooms) WHERE key = r.host),
                              :per_host)
ORDER BY r.turn, r.next_attempt_at
LIMIT :limit
"""
)
# PostgreSQL: claim and lease in one statement (one round trip). Rows another dispatcher is
# leasing right now are skipped, and the conditions are checked again on a row as it is when
# locked (a lease committed meanwhile drops it). `attempts` is returned as it was before.
_CLAIM_POSTGRES = (
    _RANKED.format(
        host=_host_sql("strpos"),
        due=_DUE,
        full_apps="SELECT key FROM jsonb_each_text(CAST(:app_rooms AS jsonb)) "
        "WHERE value::int <= 0",
        full_hosts="SELECT key FROM jsonb_each_text(CAST(:host_rooms AS jsonb)) "
        "WHERE value::int <= 0",
        app_room="(CAST(:app_rooms AS jsonb) ->> app_id)::int",
    )
    + f""", picked AS (
  SELECT e.id, r.turn, r.next_attempt_at AS due_at
  FROM by_host r JOIN events e ON e.id = r.id
  WHERE r.host_turn <= coalesce((CAST(:host_rooms AS jsonb) ->> r.host)::int, :per_host)
    AND e.delivery = 'pending' AND e.next_attempt_at <= :now
  ORDER BY r.turn, r.next_attempt_at
  LIMIT :limit
  FOR UPDATE OF e SKIP LOCKED
), leased AS (
  UPDATE events AS l SET next_attempt_at = :until, attempts = l.attempts + 1
  FROM picked WHERE l.id = picked.id
  RETURNING l.id, l.meeting_id, l.seq, l.kind, l.body, l.attempts - 1 AS attempts,
            l.pending_since, l.created_at, l.app_id, picked.turn, picked.due_at
)
SELECT {_CLAIMED_COLUMNS}
FROM leased e
JOIN apps a ON a.appid = e.app_id
JOIN accounts c ON c.sid = a.account_sid
ORDER BY e.turn, e.due_at
"""
)
_CLAIM_STATEMENT = Statement(_CLAIM_SQLITE, postgres=_CLAIM_POSTGRES)
_LEASE = Statement(
    "UPDATE events SET next_attempt_at = :until, attempts = attempts + 1 WHERE id IN "
    "(SELECT value FROM json_each(:ids))"
)
_SETTLE_WHERE = " WHERE id = :id AND delivery = 'pending' AND attempts = :attempt"
_DELIVERED = Statement(
    "UPDATE events SET delivery = 'delivered', delivered_at = :at, last_error = ''" + _SETTLE_WHERE
)
_RETRY = Statement("UPDATE events SET next_attempt_at = :at, last_error = :error" + _SETTLE_WHERE)
_DEAD = Statement(
    "UPDATE events SET delivery = 'dead', next_attempt_at = NULL, last_error = :error"
    + _SETTLE_WHERE
)
# A batch of outcomes of one kind in one statement on PostgreSQL (one round trip, however many);
# SQLite runs the single-row statement for each row in one executemany call (no round trips).
_BATCH = (
    "FROM unnest(CAST(:ids AS text[]), CAST(:attempts AS int[]), CAST(:ats AS float8[]), "
    "CAST(:errors AS text[])) AS v(id, attempt, at, error) "
    "WHERE e.id = v.id AND e.delivery = 'pending' AND e.attempts = v.attempt"
)
_DELIVERED_BATCH = Statement(
    "UPDATE events AS e SET delivery = 'delivered', delivered_at = v.at, last_error = '' " + _BATCH
)
_RETRY_BATCH = Statement(
    "UPDATE events AS e SET next_attempt_at = v.at, last_error = v.error " + _BATCH
)
_DEAD_BATCH = Statement(
    "UPDATE events AS e SET delivery = 'dead', next_attempt_at = NULL, last_error = v.error "
    + _BATCH
)
_SINGLE = {DELIVERED: _DELIVERED, PENDING: _RETRY, DEAD: _DEAD}
_BATCHED = {DELIVERED: _DELIVERED_BATCH, PENDING: _RETRY_BATCH, DEAD: _DEAD_BATCH}
_SUMMARY_COLUMNS = (
    "id, app_id, meeting_id, seq, kind, delivery, attempts, created_at, next_attempt_at, "
    "delivered_at, last_error"
)
_LIST = Statement(
    f"SELECT {_SUMMARY_COLUMNS} FROM events "
    "WHERE (:app_id = '' OR app_id = :app_id) AND (:state = '' OR delivery = :state) "
    "ORDER BY created_at, seq LIMIT :limit"
)
_REDELIVER = (
    "UPDATE events SET delivery = 'pending', next_attempt_at = :now, pending_since = :now, "
    "last_error = '' WHERE (:app_id = '' OR app_id = :app_id) AND "
)
_REDELIVER_ONE = Statement(_REDELIVER + "id = :id AND delivery != 'stored'")
_REDELIVER_DEAD = Statement(_REDELIVER + "delivery = 'dead'")
_NOTIFY = Statement("SELECT pg_notify(:channel, '')")


class OutboxRepository:
    def __init__(self, connection: Connection, dialect: Dialect) -> None:
        self._db = connection
        self._dialect = dialect

    async def claim(
        self,
        now: float,
        lease: float,
        limit: int,
        *,
        per_app: int | None = None,
        per_host: int | None = None,
        app_rooms: Mapping[str, int] | None = None,
        host_rooms: Mapping[str, int] | None = None,
        scan: int | None = None,
    ) -> list[Delivery]:
        """Due events that are first in their stream, leased for `lease` seconds.

        At most `per_app` per app and `per_host` per receiver host (`host_key`), or the room
        given for it in `app_rooms` / `host_rooms` (0 skips it); apps take turns, from the
        oldest `scan` due events of the apps and hosts with room.
        """
        params = {
            "now": now,
            "until": now + lease,
            "limit": limit,
            "per_app": limit if per_app is None else per_app,
            "per_host": limit if per_host is None else per_host,
            "scan": max(4 * limit, 256) if scan is None else scan,
            "app_rooms": json.dumps(dict(app_rooms or {})),
            "host_rooms": json.dumps(dict(host_rooms or {})),
        }
        rows = await self._db.fetch(_CLAIM_STATEMENT, params)
        if not rows:
            return []
        claimed = [
            Delivery(
                event_id=row["id"],
                meeting_id=row["meeting_id"],
                seq=row["seq"],
                kind=row["kind"],
                body=row["body"],
                attempt=row["attempts"] + 1,
                pending_since=row["pending_since"] or row["created_at"],
                callback_url=row["callback_url"],
                secret=row["auth_token"],
                app_id=row["app_id"],
            )
            for row in rows
        ]
        if self._dialect is Dialect.SQLITE:  # PostgreSQL leased them in the same statement
            ids = json.dumps([d.event_id for d in claimed])
            await self._db.execute(_LEASE, {"until": now + lease, "ids": ids})
        return claimed

    async def settle(self, outcomes: Sequence[Outcome]) -> None:
        """Record attempts' outcomes: one statement per kind of outcome, however many.

        An outcome counts only while its attempt is the event's current one (no later attempt
        or redelivery took over) and the event is still pending. Every attempt is kept, in
        one more statement (store/attempts.py)."""
        await AttemptRepository(self._db, self._dialect).record(
            [_attempt(o) for o in outcomes if o.started_at is not None]
        )
        for state in (DELIVERED, PENDING, DEAD):
            mine = [o for o in outcomes if o.state == state]
            if not mine:
                continue
            if self._dialect is Dialect.POSTGRES:
                await self._db.execute(
                    _BATCHED[state],
                    {
                        "ids": [o.delivery.event_id for o in mine],
                        "attempts": [o.delivery.attempt for o in mine],
                        "ats": [o.at for o in mine],
                        "errors": [o.error[:500] for o in mine],
                    },
                )
            else:
                await self._db.execute_many(
                    _SINGLE[state],
                    [_settled(o.delivery, at=o.at, error=o.error[:500]) for o in mine],
                )

    async def delivered(self, attempt: Delivery, now: float) -> None:
        await self._db.execute(_DELIVERED, _settled(attempt, at=now))

    async def retry_at(self, attempt: Delivery, when: float, error: str) -> None:
        await self._db.execute(_RETRY, _settled(attempt, at=when, error=error[:500]))

    async def dead(self, attempt: Delivery, error: str) -> None:
        await self._db.execute(_DEAD, _settled(attempt, error=error[:500]))

    async def list(
        self, app_id: str | None, state: str | None, limit: int = 1000
    ) -> list[EventSummary]:
        rows = await self._db.fetch(
            _LIST, {"app_id": app_id or "", "state": state or "", "limit": limit}
        )
        return [EventSummary(**as_dict(row)) for row in rows]

    async def redeliver(
        self, now: float, event_id: str | None = None, app_id: str | None = None
    ) -> int:
        """Make one event (any state but stored), or every dead one, pending again from now;
        on PostgreSQL the dispatchers of every process are woken when this commits."""
        params: dict[str, object] = {"now": now, "app_id": app_id or ""}
        if event_id:
            count = await self._db.execute(_REDELIVER_ONE, {**params, "id": event_id})
        else:
            count = await self._db.execute(_REDELIVER_DEAD, params)
        if count and self._dialect is Dialect.POSTGRES:
            from telemeeting.store.unit_of_work import PUSHES_CHANNEL  # it imports this module

            await self._db.execute(_NOTIFY, {"channel": PUSHES_CHANNEL})
        return count


def _attempt(outcome: Outcome) -> Attempt:
    assert outcome.started_at is not None
    return Attempt(
        event_id=outcome.delivery.event_id,
        attempt=outcome.delivery.attempt,
        at=outcome.started_at,
        status=outcome.status,
        latency_ms=outcome.latency_ms,
        outcome=outcome.state,
        error=outcome.error[:500],
    )


def _settled(attempt: Delivery, **values: object) -> dict[str, object]:
    """An attempt's outcome counts only while no later attempt (or redelivery) took over."""
    return {"id": attempt.event_id, "attempt": attempt.attempt, **values}
