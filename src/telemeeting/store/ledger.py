"""Account balances and the ledger: every change to a balance (a call's charge, a top-up, the
opening balance) is one row saying who, when, why, how much and the balance after.

A balance is only changed under the account's row lock (`lock`), read and written as whole
cents by the service (service/billing.py), so concurrent charges never lose one another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from telemeeting.store.connection import Connection, as_dict
from telemeeting.store.sql import Statement

#: Why a balance changed (`ledger.reason`).
CALL = "call"
TOPUP = "topup"
OPENING = "opening"
BILLING_ON = "billing_on"
BILLING_OFF = "billing_off"


@dataclass(frozen=True)
class BillingState:
    """What charging a call needs from its account, read under the account's row lock."""

    sid: str
    balance: float | None
    price_per_unit: float | None
    credit_limit: float

    @property
    def billed(self) -> bool:
        return self.balance is not None


@dataclass(frozen=True)
class LedgerEntry:
    account_sid: str
    at: float
    amount: float
    balance_after: float | None
    reason: str
    actor: str = ""
    reference: str = ""
    id: int = 0


@dataclass(frozen=True)
class LiveLeg:
    """A live leg of a billed account's production meeting (what the balance watcher needs)."""

    account_sid: str
    balance: float
    price_per_unit: float | None
    credit_limit: float
    meeting_id: str
    leg_id: str
    answered_at: float | None


_LOCK = Statement(
    "SELECT sid, balance, price_per_unit, credit_limit FROM accounts WHERE sid = :sid",
    # NO KEY UPDATE: serializes the account's charges (and CDR ids) without blocking the key
    # checks of rows that reference the account (a new app).
    postgres="SELECT sid, balance, price_per_unit, credit_limit FROM accounts WHERE sid = :sid "
    "FOR NO KEY UPDATE",
)
#: The same row read without a lock: pricing a change's legs before its writes (billing.py).
_STATE = Statement(
    "SELECT sid, balance, price_per_unit, credit_limit FROM accounts WHERE sid = :sid"
)
_SET_BALANCE = Statement("UPDATE accounts SET balance = :balance WHERE sid = :sid")
_ENTRY_COLUMNS = ("account_sid", "at", "amount", "balance_after", "reason", "actor", "reference")
_INSERT = Statement(
    f"INSERT INTO ledger ({', '.join(_ENTRY_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _ENTRY_COLUMNS)})"
)
_ENTRIES = Statement(
    f"SELECT id, {', '.join(_ENTRY_COLUMNS)} FROM ledger WHERE account_sid = :sid "
    "ORDER BY id DESC LIMIT :limit"
)
_TOTALS = Statement(
    "SELECT reason, COUNT(*) AS entries, COALESCE(SUM(amount), 0) AS amount FROM ledger "
    "WHERE account_sid = :sid GROUP BY reason"
)
# From the active meetings (few, indexed by state) to their live legs: never a scan of all legs.
_LIVE_BILLED_LEGS = Statement(
    "SELECT a.sid AS account_sid, a.balance, a.price_per_unit, a.credit_limit, "
    "m.id AS meeting_id, l.id AS leg_id, l.answered_at "
    "FROM meetings m JOIN apps p ON p.appid = m.app_id JOIN accounts a ON a.sid = p.account_sid "
    "JOIN legs l ON l.meeting_id = m.id "
    "WHERE m.state = 'active' AND m.live_count > 0 AND p.env = 'production' "
    "AND a.balance IS NOT NULL AND l.state != 'disconnect'"
)
_LIVE_CALLS = Statement(
    "SELECT p.env, l.answered_at FROM meetings m JOIN apps p ON p.appid = m.app_id "
    "JOIN legs l ON l.meeting_id = m.id "
    "WHERE m.state = 'active' AND m.live_count > 0 AND p.account_sid = :sid "
    "AND l.state != 'disconnect'"
)


class LedgerRepository:
    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def lock(self, sid: str) -> BillingState | None:
        """The account's billing state, its row locked until the transaction ends."""
        row = await self._db.fetchone(_LOCK, {"sid": sid})
        if row is None:
            return None
        return BillingState(row[0], row[1], row[2], float(row[3] or 0.0))

    async def state(self, sid: str) -> BillingState | None:
        """The account's billing state, unlocked (it may change before the transaction ends)."""
        row = await self._db.fetchone(_STATE, {"sid": sid})
        if row is None:
            return None
        return BillingState(row[0], row[1], row[2], float(row[3] or 0.0))

    async def record(self, entries: Sequence[LedgerEntry]) -> None:
        """Append entries and set the balance to the last one's `balance_after` (each entry of
        the same account; the caller holds its lock)."""
        if not entries:
            return
        await self._db.execute_many(
            _INSERT, [{c: getattr(entry, c) for c in _ENTRY_COLUMNS} for entry in entries]
        )
        last = entries[-1]
        params = {"sid": last.account_sid, "balance": last.balance_after}
        await self._db.execute(_SET_BALANCE, params)

    async def entries(self, sid: str, limit: int = 20) -> list[LedgerEntry]:
        """The account's latest entries, newest first."""
        rows = await self._db.fetch(_ENTRIES, {"sid": sid, "limit": limit})
        return [LedgerEntry(**as_dict(row)) for row in rows]

    async def totals(self, sid: str) -> dict[str, tuple[int, float]]:
        """Per reason: how many entries and their sum."""
        rows = await self._db.fetch(_TOTALS, {"sid": sid})
        return {row[0]: (int(row[1]), float(row[2])) for row in rows}

    async def live_billed_legs(self) -> list[LiveLeg]:
        """Every live leg (ringing or answered) of a billed account's production meetings."""
        return [LiveLeg(**as_dict(row)) for row in await self._db.fetch(_LIVE_BILLED_LEGS)]

    async def live_calls(self, sid: str) -> list[tuple[str, float | None]]:
        """The account's live legs: (environment, answered at or None while ringing)."""
        rows = await self._db.fetch(_LIVE_CALLS, {"sid": sid})
        return [(row[0], row[1]) for row in rows]
