"""What the console's listing pages share: paging, filters from the query string, and how a
change answers (a redirect, or 204 for console.js's own submissions)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from telemeeting.console.actions import ConsoleError
from telemeeting.console.web import Context
from telemeeting.store.console_reads import NO_END, NO_START, ConsoleReads, Page
from telemeeting.store.unit_of_work import Database

PAGE_SIZE = 50
#: Sent by console.js when it submits a form itself (the live meeting page stays as it is).
FETCH_HEADER = "x-console-fetch"


def done(request: Request, url: str) -> Response:
    """After a change: the page to go to, or for console.js's own submissions 204 (the live
    stream shows the change)."""
    if request.headers.get(FETCH_HEADER) == "1":
        return Response(status_code=204)
    return RedirectResponse(url, status_code=303)


async def apps_of(db: Database, ctx: Context) -> list[dict[str, Any]]:
    """The apps the user may see (filters' choices, the Apps page)."""
    async with db.reader() as uow:
        return await ConsoleReads(uow.connection).apps(ctx.user.scope)


def with_body(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "payload": json_object(row.get("body", ""))}


def json_object(body: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def choice(value: str, allowed: tuple[str, ...]) -> str:
    """A filter's value when it is one of `allowed`, else no filter."""
    return value if value in allowed else ""


def offset_of(query: Mapping[str, str]) -> int:
    page = query.get("page", "1")
    number = int(page) if page.isdigit() and len(page) < 7 else 1
    return (max(1, number) - 1) * PAGE_SIZE


def date_range(query: Mapping[str, str], zone: ZoneInfo) -> tuple[float, float]:
    """`from` and `to` (YYYY-MM-DD, both days included) in the platform's time zone."""
    since, until = NO_START, NO_END
    start = _date(query.get("from", ""))
    end = _date(query.get("to", ""))
    if start is not None:
        since = datetime.combine(start, time(), zone).timestamp()
    if end is not None:
        until = datetime.combine(end + timedelta(days=1), time(), zone).timestamp()
    return since, until


def _date(value: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ConsoleError("Not a date (YYYY-MM-DD).") from exc


def pager(request: Request, page: Page) -> dict[str, str]:
    """Links to the previous and next page, keeping the filters."""
    number = page.offset // PAGE_SIZE + 1
    links: dict[str, str] = {"number": str(number)}
    params = dict(request.query_params)
    if number > 1:
        links["previous"] = f"{request.url.path}?{urlencode({**params, 'page': number - 1})}"
    if page.more:
        links["next"] = f"{request.url.path}?{urlencode({**params, 'page': number + 1})}"
    return links
