"""Operator use cases: accounts and apps (the CLI and the console call these)."""

from __future__ import annotations

import secrets
import time
from dataclasses import replace
from functools import lru_cache
from typing import Any
from zoneinfo import available_timezones

import httpx

from telemeeting.network import invalid_entries
from telemeeting.store.ledger import OPENING, LedgerEntry
from telemeeting.store.records import Account, App
from telemeeting.store.unit_of_work import Database
from telemeeting.wire.account import cents
from telemeeting.wire.environments import ENVIRONMENTS


class AdminError(Exception):
    """An operator request that cannot be carried out; the message says why."""


def new_credential() -> str:
    """32 lower-case hex characters, the shape of real account SIDs, tokens and app ids."""
    return secrets.token_hex(16)


async def create_account(
    db: Database,
    *,
    sid: str | None = None,
    token: str | None = None,
    name: str = "",
    balance: float | None = None,
) -> Account:
    """A new account; with a `balance` it is billed (prepaid), without, billing is off."""
    if balance is not None:
        balance = float(cents(balance))
    account = Account(
        sid=sid or new_credential(),
        auth_token=token or new_credential(),
        name=name,
        enabled=True,
        balance=balance,
        created_at=time.time(),
    )
    async with db.unit_of_work() as uow:
        if await uow.accounts.get(account.sid):
            raise AdminError(f"account {account.sid} already exists")
        await uow.accounts.add(account)
        if balance is not None:  # every balance change is in the ledger, the first one too
            opening = LedgerEntry(account.sid, account.created_at, balance, balance, OPENING)
            await uow.ledger.record([opening])
    return account


async def set_account_enabled(db: Database, sid: str, enabled: bool) -> Account:
    async with db.unit_of_work() as uow:
        if not await uow.accounts.update(sid, enabled=enabled):
            raise AdminError(f"no account {sid}")
        account = await uow.accounts.get(sid)
    assert account is not None
    return account


def _check_app_values(values: dict[str, Any]) -> None:
    if "ip_whitelist" in values and (bad := invalid_entries(values["ip_whitelist"])):
        raise AdminError(f"not an IP or CIDR: {', '.join(bad)}")
    url = values.get("callback_url")
    if url:
        if not url.startswith(("http://", "https://")):
            raise AdminError("callback URL must start with http:// or https://")
        try:
            if not httpx.URL(url).host:
                raise AdminError(f"callback URL has no host: {url}")
        except httpx.InvalidURL as exc:
            raise AdminError(f"not a valid callback URL: {url} ({exc})") from exc
    if "env" in values and values["env"] not in ENVIRONMENTS:
        raise AdminError("env must be production or sandbox")
    zone = values.get("timezone")
    if zone and zone not in _zone_names():
        raise AdminError(
            f"unknown time zone {zone!r}: use an IANA name such as Asia/Shanghai or "
            "America/New_York (or an empty string to infer it from each request)"
        )


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


async def create_app(
    db: Database,
    *,
    account_sid: str,
    env: str,
    appid: str | None = None,
    name: str = "",
    callback_url: str = "",
    ip_whitelist: str = "",
    online: bool = True,
    features: str = "meeting",
    caller_id: str = "",
    timezone: str = "",
) -> App:
    app = App(
        appid=appid or new_credential(),
        account_sid=account_sid,
        env=env,
        name=name,
        callback_url=callback_url,
        ip_whitelist=ip_whitelist,
        online=online,
        features=features,
        caller_id=caller_id,
        created_at=time.time(),
        timezone=timezone,
    )
    _check_app_values(
        {
            "env": env,
            "callback_url": callback_url,
            "ip_whitelist": ip_whitelist,
            "timezone": timezone,
        }
    )
    async with db.unit_of_work() as uow:
        if await uow.accounts.get(account_sid) is None:
            raise AdminError(f"no account {account_sid}")
        if await uow.apps.get(app.appid):
            raise AdminError(f"app {app.appid} already exists")
        await uow.apps.add(app)
    return app


async def update_app(db: Database, appid: str, **values: Any) -> App:
    values = {k: v for k, v in values.items() if v is not None}
    _check_app_values(values)
    async with db.unit_of_work() as uow:
        app = await uow.apps.get(appid)
        if app is None:
            raise AdminError(f"no app {appid}")
        if values:
            await uow.apps.update(appid, **values)
    return replace(app, **values)


DEMO_ACCOUNT_NAME = "demo"


async def demo_credentials(db: Database, env: str) -> tuple[Account, App] | None:
    """The demo account that `serve` created on first start, and its app in `env`."""
    async with db.reader() as uow:
        for account in await uow.accounts.named(DEMO_ACCOUNT_NAME):
            for app in await uow.apps.of_account(account.sid):
                if app.env == env:
                    return account, app
    return None


async def is_empty(db: Database) -> bool:
    async with db.unit_of_work() as uow:
        return await uow.accounts.count() == 0
