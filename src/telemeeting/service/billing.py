"""Billing: what answered time costs, charged in the transaction that ends the leg.

A leg's charge is `ceil(duration / unit_seconds) × price` rounded half up to whole cents, where
`duration` is the CDR's own (whole seconds of answered time) and the price is the account's
(`accounts.price_per_unit`) or the configured `[billing] price_per_unit`. Only production apps of
accounts with a balance are charged: sandbox apps are free, and an account without a balance
(NULL) has billing off. The charge is the CDR's `oriamount`; the CDR row, the debit and its
ledger row are written with the leg's end, in one transaction, so a crash can neither bill a
call twice nor lose its charge.

`run_out_at` is the arithmetic the balance watcher (service/balance_watch.py) uses to hang up
calls before they start a unit the balance cannot pay.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from telemeeting.config import Settings
from telemeeting.domain.events import LegEnded
from telemeeting.domain.model import Meeting
from telemeeting.service.pushes import Push
from telemeeting.store.cdrs import NewCdr
from telemeeting.store.ledger import CALL, BillingState, LedgerEntry
from telemeeting.store.records import Account, App
from telemeeting.store.unit_of_work import UnitOfWork
from telemeeting.wire import callbacks
from telemeeting.wire.account import cents
from telemeeting.wire.cdr import CDR_FIELD
from telemeeting.wire.envelope import dump
from telemeeting.wire.environments import PRODUCTION

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Tariff:
    """The configured price of answered time: per started unit of `unit_seconds`."""

    unit_seconds: int
    price_per_unit: Decimal

    @classmethod
    def from_settings(cls, settings: Settings) -> Tariff:
        billing = settings.billing
        return cls(billing.unit_seconds, Decimal(str(billing.price_per_unit)))

    def price(self, account_price: float | None) -> Decimal:
        """The account's own price, else the configured one."""
        return self.price_per_unit if account_price is None else Decimal(str(account_price))

    def units(self, seconds: int) -> int:
        """Started units in `seconds` of answered time (0 s: none)."""
        return -(-max(0, seconds) // self.unit_seconds)

    def charge(self, seconds: int, price: Decimal) -> Decimal:
        return cents(self.units(seconds) * price)


def budget(balance: float, credit_limit: float) -> Decimal:
    """What an account may still spend: its balance plus how far below zero it may go."""
    return cents(balance) + cents(credit_limit)


def is_billed(account_balance: float | None, app: App) -> bool:
    return app.env == PRODUCTION and account_balance is not None


def may_dial(account: Account, app: App) -> bool:
    """createMeeting and inviteJoinMeeting: False (`-204`) when a billed account has nothing left
    to spend (balance plus credit limit ≤ 0)."""
    if not is_billed(account.balance, app):
        return True
    assert account.balance is not None
    return budget(account.balance, account.credit_limit) > 0


@dataclass
class LegCharges:
    """The charges of the legs a change ends, worked out under the account's row lock."""

    state: BillingState | None = None
    billed: bool = False
    amounts: dict[str, Decimal] = field(default_factory=dict)

    def amount(self, leg_id: str) -> float:
        return float(self.amounts.get(leg_id, ZERO))


NO_CHARGES = LegCharges()


async def charge_ended_legs(
    uow: UnitOfWork, meeting: Meeting, app: App | None, tariff: Tariff
) -> LegCharges:
    """Price the legs a change ends, at the account's price as read now, without a lock.

    The account's row lock, which serializes its balance, is taken by `record_cdrs` after the
    change's other writes, and only for a billed change: it is held until commit, and every
    change of the account's legs waits for it. Taken here, at the start, it was held across the
    change's pushes, meeting, legs and orders as well, and one account's leg ends queued behind
    each other (46 waiting at once in the PostgreSQL soak, docs/performance.md). A price changed
    between this read and the commit applies from the next leg on."""
    ended = [event.leg_id for event in meeting.events if isinstance(event, LegEnded)]
    if not ended or app is None:
        return NO_CHARGES
    state = await uow.ledger.state(app.account_sid)
    if state is None or not is_billed(state.balance, app):
        return LegCharges(state, False, {leg_id: ZERO for leg_id in ended})
    price = tariff.price(state.price_per_unit)
    amounts = {}
    for leg_id in ended:
        leg = meeting.leg(leg_id)
        amounts[leg_id] = tariff.charge(leg.duration_seconds, price) if leg else ZERO
    return LegCharges(state, True, amounts)


async def record_cdrs(
    uow: UnitOfWork,
    meeting: Meeting,
    app: App | None,
    cdr_pushes: Iterable[tuple[str | None, Mapping[str, Any]]],
    charges: LegCharges,
) -> None:
    """Keep each ended leg's CDR (as pushed) for the pull, and debit what it cost, one ledger
    row per charged leg. Runs last in the change's transaction: a billed change locks the
    account's row until commit, so its balance is debited from the committed value."""
    if app is None or charges.state is None:
        return
    # A debit needs the balance under the lock; CDRs alone are put in commit order by the
    # database (PostgreSQL: a trigger at COMMIT, migration 0015; SQLite: one writer).
    state = await uow.ledger.lock(app.account_sid) if charges.billed else charges.state
    if state is None:
        return
    billed = charges.billed and is_billed(state.balance, app)
    cdrs: list[NewCdr] = []
    entries: list[LedgerEntry] = []
    balance = cents(state.balance) if state.balance is not None else None
    for leg_id, body in cdr_pushes:
        leg = meeting.leg(leg_id) if leg_id else None
        if leg is None:
            continue
        entry = body[CDR_FIELD][0]
        at = leg.ended_at if leg.ended_at is not None else leg.created_at
        amount = charges.amounts.get(leg.id, ZERO)
        cdrs.append(
            NewCdr(
                account_sid=app.account_sid,
                app_id=app.appid,
                env=app.env,
                meeting_id=meeting.id,
                leg_id=leg.id,
                requestid=leg.request_id,
                called=leg.phone,
                body=dump(entry).decode("utf-8"),
                charge=float(amount),
                created_at=at,
            )
        )
        if billed and amount > 0 and balance is not None:
            balance -= amount
            entries.append(
                LedgerEntry(
                    account_sid=app.account_sid,
                    at=at,
                    amount=float(-amount),
                    balance_after=float(balance),
                    reason=CALL,
                    actor=app.appid,
                    reference=leg.id,
                )
            )
    await uow.cdrs.add(cdrs)
    await uow.ledger.record(entries)


# ---- when live calls run out of money ----------------------------------------------------------


def _units_at(tariff: Tariff, answered_at: float, at: float) -> int:
    """Units a leg answered at `answered_at` has started by `at` (as its CDR would say)."""
    return tariff.units(max(0, round(at - answered_at)))


def used_so_far(tariff: Tariff, price: Decimal, answered: Sequence[float], now: float) -> Decimal:
    """What these answered calls would cost if they ended now."""
    return sum((tariff.charge(max(0, round(now - a)), price) for a in answered), ZERO)


def run_out_at(
    tariff: Tariff,
    price: Decimal,
    money: Decimal,
    answered: Sequence[float],
    ringing: bool,
    now: float,
    horizon: float,
) -> float | None:
    """When an account's live calls must be hung up, if that is before `now + horizon`.

    `money` is what the account may spend (balance plus credit limit); `answered` the answer
    times of its answered calls; `ringing` whether others still ring. A call starts its next
    unit when its rounded duration passes a unit boundary (at `answer + k·unit + 0.5 s`); the
    calls are hung up at the boundary itself (`answer + k·unit`) of the first unit the money
    cannot pay, so the charges never exceed it. Calls still ringing when not one more unit can be
    paid are hung up at once.
    """
    if price <= 0:
        return None
    left = money - used_so_far(tariff, price, answered, now)
    if left < 0:
        return now
    affordable = int(left // price)  # further units the money pays for
    if not answered:
        return now if ringing and affordable == 0 else None
    unit = tariff.unit_seconds
    until = now + horizon + 0.5
    starts: list[float] = []
    for answered_at in answered:
        first = answered_at + _units_at(tariff, answered_at, now) * unit + 0.5
        if first <= until:
            starts.extend(first + k * unit for k in range(int((until - first) // unit) + 1))
    if len(starts) <= affordable:
        return None
    starts.sort()
    return starts[affordable] - 0.5


def hang_up_time(due: float, now: float, answered: Iterable[float | None]) -> float:
    """When calls cut off for `due` end on record: at the boundary (never later than now), but
    never before one of them was answered."""
    at = min(now, due)
    for answered_at in answered:
        if answered_at is not None:
            at = max(at, answered_at)
    return at


def cdr_pushes(pushes: Iterable[Push]) -> list[tuple[str | None, Mapping[str, Any]]]:
    """The CDR pushes of a change as (leg id, body)."""
    return [(push.leg_id, push.body) for push in pushes if push.kind == callbacks.CDR]
