"""The account surface: the balance and the CDR pull for the API, and the operator's billing
commands (top up, prices and credit limits, what an account stands at)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from telemeeting.config import Settings
from telemeeting.domain import errors
from telemeeting.service.admin import AdminError
from telemeeting.service.billing import Tariff, used_so_far
from telemeeting.store.cdrs import StoredCdr
from telemeeting.store.ledger import BILLING_OFF, BILLING_ON, TOPUP, LedgerEntry
from telemeeting.store.records import App
from telemeeting.store.unit_of_work import Database
from telemeeting.wire.account import cents
from telemeeting.wire.cdr import CdrsAfter, CdrsInHour
from telemeeting.wire.environments import PRODUCTION


class AccountQueries:
    """What the API answers about the calling account (getBlance.wx, CallCdr.wx)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._zone = settings.zone

    async def balance(self, account_sid: str) -> float | None:
        """The balance as stored now (not the API's cached account); None: billing is off."""
        async with self._db.reader() as uow:
            account = await uow.accounts.get(account_sid)
        if account is None:  # removed since the request was authenticated
            raise errors.InvalidRequest("no such account")
        return account.balance

    async def cdrs_after(self, app: App, request: CdrsAfter) -> list[StoredCdr]:
        """getCdrByResId: a page after `lastresid`, or (limit 0) that request's own CDRs."""
        async with self._db.reader() as uow:
            if request.lookup:
                found = await uow.cdrs.of_request(app.account_sid, app.env, request.last_request_id)
                if request.last_called is not None:
                    found = [cdr for cdr in found if _called(cdr) == request.last_called]
                return found
            page = await uow.cdrs.after(
                app.account_sid,
                app.env,
                request.limit,
                None if request.from_start else request.last_request_id,
                request.last_called,
            )
        if page is None:
            raise errors.InvalidRequest(f"lastresid {request.last_request_id} is no CDR of yours")
        return page

    async def cdrs_in_hour(self, app: App, request: CdrsInHour) -> list[StoredCdr]:
        start, end = request.window(self._zone)
        async with self._db.reader() as uow:
            return await uow.cdrs.between(app.account_sid, app.env, start, end)


def _called(cdr: StoredCdr) -> str:
    return str(json.loads(cdr.body).get("called", ""))


# ---- operator commands -------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountBilling:
    """`telemeeting account show`: where an account stands."""

    sid: str
    name: str
    enabled: bool
    billing: bool
    balance: float | None
    price_per_unit: float
    price_is_default: bool
    unit_seconds: int
    credit_limit: float
    live_calls: int
    live_calls_production: int
    live_usage: float
    available: float | None
    cdrs: int
    cdr_charges: float
    ledger: list[dict[str, Any]] = field(default_factory=list)


def _amount(value: float | str | Decimal, what: str) -> Decimal:
    try:
        amount = cents(value)
    except ArithmeticError as exc:
        raise AdminError(f"{what} is not an amount: {value!r}") from exc
    if not amount.is_finite():
        raise AdminError(f"{what} is not an amount: {value!r}")
    return amount


async def top_up(db: Database, sid: str, amount: float | str, actor: str = "") -> float:
    """Add `amount` (negative: take it back) to the balance; the new balance. An account with
    billing off gets billing on, starting from 0."""
    value = _amount(amount, "amount")
    if value == 0:
        raise AdminError("a top-up of 0 changes nothing")
    async with db.unit_of_work() as uow:
        state = await uow.ledger.lock(sid)
        if state is None:
            raise AdminError(f"no account {sid}")
        now = time.time()
        entries = []
        balance = cents(state.balance) if state.balance is not None else None
        if balance is None:
            entries.append(LedgerEntry(sid, now, 0.0, 0.0, BILLING_ON, actor))
            balance = cents(0)
        balance += value
        entries.append(LedgerEntry(sid, now, float(value), float(balance), TOPUP, actor))
        await uow.ledger.record(entries)
    return float(balance)


async def update_billing(
    db: Database,
    sid: str,
    *,
    price_per_unit: float | None = None,
    default_price: bool = False,
    credit_limit: float | None = None,
    billing: bool | None = None,
    actor: str = "",
) -> None:
    """Change an account's price, credit limit, or whether it is billed at all."""
    values: dict[str, Any] = {}
    if price_per_unit is not None:
        if price_per_unit < 0:
            raise AdminError("a price cannot be negative")
        values["price_per_unit"] = float(Decimal(str(price_per_unit)))
    if default_price:
        values["price_per_unit"] = None
    if credit_limit is not None:
        limit = _amount(credit_limit, "credit limit")
        if limit < 0:
            raise AdminError("a credit limit cannot be negative (0: prepaid)")
        values["credit_limit"] = float(limit)
    async with db.unit_of_work() as uow:
        state = await uow.ledger.lock(sid)
        if state is None:
            raise AdminError(f"no account {sid}")
        if values:
            await uow.accounts.update(sid, **values)
        now = time.time()
        if billing is True and state.balance is None:
            await uow.ledger.record([LedgerEntry(sid, now, 0.0, 0.0, BILLING_ON, actor)])
        elif billing is False and state.balance is not None:
            gone = -cents(state.balance)
            await uow.ledger.record([LedgerEntry(sid, now, float(gone), None, BILLING_OFF, actor)])


async def account_billing(
    db: Database, settings: Settings, sid: str, ledger_entries: int = 5
) -> AccountBilling:
    tariff = Tariff.from_settings(settings)
    now = time.time()
    async with db.reader() as uow:
        account = await uow.accounts.get(sid)
        if account is None:
            raise AdminError(f"no account {sid}")
        live = await uow.ledger.live_calls(sid)
        count, charged = await uow.cdrs.charges(sid)
        entries = await uow.ledger.entries(sid, ledger_entries)
    price = tariff.price(account.price_per_unit)
    answered = [at for env, at in live if env == PRODUCTION and at is not None]
    billed = account.balance is not None
    usage = used_so_far(tariff, price, answered, now) if billed else cents(0)
    available = None
    if account.balance is not None:
        available = float(cents(account.balance) + cents(account.credit_limit) - usage)
    return AccountBilling(
        sid=account.sid,
        name=account.name,
        enabled=account.enabled,
        billing=billed,
        balance=account.balance,
        price_per_unit=float(price),
        price_is_default=account.price_per_unit is None,
        unit_seconds=tariff.unit_seconds,
        credit_limit=account.credit_limit,
        live_calls=len(live),
        live_calls_production=sum(1 for env, _ in live if env == PRODUCTION),
        live_usage=float(usage),
        available=available,
        cdrs=count,
        cdr_charges=float(cents(charged)),
        ledger=[vars(entry) for entry in entries],
    )
