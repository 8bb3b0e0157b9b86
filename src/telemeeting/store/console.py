"""The web console's own tables (migration 0009): operators, console sessions, the audit log.

Kept out of repositories.py because nothing on the API's request path touches them. A session
row is the server side of the console's cookie: the cookie carries a random secret, the row is
keyed by its SHA-256, so that logging out, disabling an operator or an account, or idle expiry
revoke a session at once on every process sharing the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from telemeeting.store.connection import Connection, as_dict
from telemeeting.store.sql import Statement

#: Who a console session or an audit row belongs to.
OPERATOR = "operator"
HOLDER = "holder"  # an account holder (logged in with the account SID and auth token)
CLI = "cli"  # the operator CLI (`telemeeting operator …`)


@dataclass(frozen=True)
class Operator:
    name: str
    password_hash: str
    enabled: bool
    created_at: float


@dataclass(frozen=True)
class SessionRow:
    id: str
    kind: str
    principal: str
    csrf: str
    language: str
    created_at: float
    seen_at: float


@dataclass(frozen=True)
class AuditEntry:
    at: float
    actor_kind: str
    actor: str
    account_sid: str
    action: str
    target: str = ""
    detail: str = ""
    id: int = 0


_OPERATOR_COLUMNS = "name, password_hash, enabled, created_at"
_GET_OPERATOR = Statement(f"SELECT {_OPERATOR_COLUMNS} FROM operators WHERE name = :name")
_ADD_OPERATOR = Statement(
    f"INSERT INTO operators ({_OPERATOR_COLUMNS}) "
    "VALUES (:name, :password_hash, :enabled, :created_at)"
)
_LIST_OPERATORS = Statement(f"SELECT {_OPERATOR_COLUMNS} FROM operators ORDER BY name")
_SET_OPERATOR_ENABLED = Statement("UPDATE operators SET enabled = :enabled WHERE name = :name")
_SET_OPERATOR_PASSWORD = Statement(
    "UPDATE operators SET password_hash = :password_hash WHERE name = :name"
)


class OperatorRepository:
    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def get(self, name: str) -> Operator | None:
        row = await self._db.fetchone(_GET_OPERATOR, {"name": name})
        return _operator(row) if row else None

    async def add(self, operator: Operator) -> None:
        await self._db.execute(
            _ADD_OPERATOR,
            {
                "name": operator.name,
                "password_hash": operator.password_hash,
                "enabled": operator.enabled,
                "created_at": operator.created_at,
            },
        )

    async def all(self) -> list[Operator]:
        return [_operator(row) for row in await self._db.fetch(_LIST_OPERATORS)]

    async def set_enabled(self, name: str, enabled: bool) -> bool:
        return bool(
            await self._db.execute(_SET_OPERATOR_ENABLED, {"name": name, "enabled": enabled})
        )

    async def set_password_hash(self, name: str, password_hash: str) -> bool:
        params = {"name": name, "password_hash": password_hash}
        return bool(await self._db.execute(_SET_OPERATOR_PASSWORD, params))


def _operator(row: object) -> Operator:
    values = as_dict(row)
    values["enabled"] = bool(values["enabled"])
    return Operator(**values)


_SESSION_COLUMNS = "id, kind, principal, csrf, language, created_at, seen_at"
_GET_SESSION = Statement(f"SELECT {_SESSION_COLUMNS} FROM console_sessions WHERE id = :id")
_ADD_SESSION = Statement(
    f"INSERT INTO console_sessions ({_SESSION_COLUMNS}) "
    "VALUES (:id, :kind, :principal, :csrf, :language, :created_at, :seen_at)"
)
_TOUCH_SESSION = Statement("UPDATE console_sessions SET seen_at = :seen_at WHERE id = :id")
_DELETE_SESSION = Statement("DELETE FROM console_sessions WHERE id = :id")
_DELETE_PRINCIPAL = Statement(
    "DELETE FROM console_sessions WHERE kind = :kind AND principal = :principal"
)
_DELETE_IDLE = Statement("DELETE FROM console_sessions WHERE seen_at < :before")


class SessionRepository:
    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def get(self, session_id: str) -> SessionRow | None:
        row = await self._db.fetchone(_GET_SESSION, {"id": session_id})
        return SessionRow(**as_dict(row)) if row else None

    async def add(self, session: SessionRow) -> None:
        await self._db.execute(_ADD_SESSION, vars(session))

    async def touch(self, session_id: str, seen_at: float) -> None:
        await self._db.execute(_TOUCH_SESSION, {"id": session_id, "seen_at": seen_at})

    async def delete(self, session_id: str) -> None:
        await self._db.execute(_DELETE_SESSION, {"id": session_id})

    async def delete_of(self, kind: str, principal: str) -> int:
        """Revoke every session of one operator or account (disabled, password changed)."""
        return await self._db.execute(_DELETE_PRINCIPAL, {"kind": kind, "principal": principal})

    async def delete_idle(self, before: float) -> int:
        return await self._db.execute(_DELETE_IDLE, {"before": before})


_AUDIT_COLUMNS = "at, actor_kind, actor, account_sid, action, target, detail"
_ADD_AUDIT = Statement(
    f"INSERT INTO audit_log ({_AUDIT_COLUMNS}) "
    "VALUES (:at, :actor_kind, :actor, :account_sid, :action, :target, :detail)"
)
# '' = every account (operators); else one account's rows (what its holder may see).
_RECENT_AUDIT = Statement(
    f"SELECT id, {_AUDIT_COLUMNS} FROM audit_log "
    "WHERE (:account_sid = '' OR account_sid = :account_sid) "
    "ORDER BY id DESC LIMIT :limit OFFSET :offset"
)


class AuditRepository:
    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def record(self, entry: AuditEntry) -> None:
        values = vars(entry).copy()
        values.pop("id")
        values["detail"] = values["detail"][:2000]
        await self._db.execute(_ADD_AUDIT, values)

    async def recent(
        self, account_sid: str = "", limit: int = 50, offset: int = 0
    ) -> list[AuditEntry]:
        rows = await self._db.fetch(
            _RECENT_AUDIT, {"account_sid": account_sid, "limit": limit, "offset": offset}
        )
        return [AuditEntry(**as_dict(row)) for row in rows]
