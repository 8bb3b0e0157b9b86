"""The account actions: the balance (getBlance.wx) and the CDR pull (CallCdr.wx). Both only read;
both answer for the calling account (the app's), never another's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from telemeeting.service.accounts import AccountQueries
from telemeeting.store.cdrs import StoredCdr
from telemeeting.store.records import App
from telemeeting.wire import account, cdr

AccountHandler = Callable[[AccountQueries, App, dict[str, Any]], Awaitable[dict[str, Any]]]


def _cdr_list(cdrs: Sequence[StoredCdr]) -> dict[str, Any]:
    """`"cdr": [...]` with each entry's stored JSON spliced in as it was pushed."""
    raw = b"[" + b",".join(stored.body.encode("utf-8") for stored in cdrs) + b"]"
    return {cdr.CDR_FIELD: orjson.Fragment(raw)}


async def query_balance(queries: AccountQueries, app: App, body: dict[str, Any]) -> dict[str, Any]:
    return account.balance_fields(app.account_sid, await queries.balance(app.account_sid))


async def cdrs_by_request(
    queries: AccountQueries, app: App, body: dict[str, Any]
) -> dict[str, Any]:
    return _cdr_list(await queries.cdrs_after(app, cdr.parse_cdrs_after(body)))


async def cdrs_by_time(queries: AccountQueries, app: App, body: dict[str, Any]) -> dict[str, Any]:
    return _cdr_list(await queries.cdrs_in_hour(app, cdr.parse_cdrs_in_hour(body)))


ACCOUNT_HANDLERS: dict[str, AccountHandler] = {
    account.QUERY_BALANCE: query_balance,
    cdr.BY_REQUEST: cdrs_by_request,
    cdr.BY_TIME: cdrs_by_time,
}
