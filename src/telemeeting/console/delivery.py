"""The pages about what left the platform: pushes with every delivery attempt (and redelivery),
and CDRs (with the CSV export)."""

from __future__ import annotations

import csv
import io
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from telemeeting.console.actions import ConsoleActions, NotFound
from telemeeting.console.listing import (
    PAGE_SIZE,
    apps_of,
    choice,
    date_range,
    json_object,
    offset_of,
    pager,
    with_body,
)
from telemeeting.console.web import Context, Renderer, read_form, text
from telemeeting.store.attempts import AttemptRepository
from telemeeting.store.console_reads import CdrFilter, ConsoleReads, EventFilter, Page
from telemeeting.store.outbox import STATES as PUSH_STATES
from telemeeting.store.unit_of_work import Database
from telemeeting.wire.environments import ENVIRONMENTS

#: CSV columns: the CDR's own fields (wire/callbacks.py cdr_body) and its charge.
CDR_COLUMNS = (
    "requestid",
    "appid",
    "meid",
    "caller",
    "called",
    "calledstime",
    "calledetime",
    "duration",
    "oriamount",
    "stateDesc",
    "customParm",
)
#: The most rows one CSV export holds.
CSV_MAX_ROWS = 100_000


class DeliveryPages:
    def __init__(
        self, db: Database, actions: ConsoleActions, renderer: Renderer, zone: ZoneInfo
    ) -> None:
        self._db = db
        self._actions = actions
        self._renderer = renderer
        self._zone = zone

    # ---- pushes -------------------------------------------------------------------------

    async def pushes(self, request: Request, ctx: Context) -> Response:
        query = request.query_params
        state = choice(query.get("state", ""), PUSH_STATES)
        app_id = query.get("app", "")[:64]
        offset = offset_of(query)
        async with self._db.reader() as uow:
            reads = ConsoleReads(uow.connection)
            page = await reads.events(
                ctx.user.scope, EventFilter(state=state, app_id=app_id), offset, PAGE_SIZE
            )
            attempts = await AttemptRepository(uow.connection, uow.dialect).of_events(
                [row["id"] for row in page.rows]
            )
            apps = await reads.apps(ctx.user.scope)
        return ctx.render(
            "pushes.html",
            page=page,
            attempts=attempts,
            apps=apps,
            states=PUSH_STATES,
            filters={"state": state, "app": app_id},
            pager=pager(request, page),
        )

    async def push(self, request: Request, ctx: Context) -> Response:
        event_id = request.path_params["event_id"]
        async with self._db.reader() as uow:
            page = await ConsoleReads(uow.connection).events(
                ctx.user.scope, EventFilter(event_id=event_id)
            )
            if not page.rows:
                raise NotFound("Not found")
            attempts = await AttemptRepository(uow.connection, uow.dialect).of_events([event_id])
        event = with_body(page.rows[0])
        return ctx.render("push.html", event=event, attempts=attempts.get(event_id, []))

    async def redeliver(self, request: Request, ctx: Context) -> Response:
        event_id = request.path_params["event_id"]
        await self._actions.redeliver(ctx.user, event_id)
        return RedirectResponse(f"/pushes/{event_id}", status_code=303)

    async def redeliver_dead(self, request: Request, ctx: Context) -> Response:
        form = await read_form(request)
        app_id = text(form, "app", 64)
        await self._actions.redeliver_dead(ctx.user, app_id)
        return RedirectResponse(f"/pushes?app={app_id}", status_code=303)

    # ---- CDRs ---------------------------------------------------------------------------

    async def cdrs(self, request: Request, ctx: Context) -> Response:
        page, filters = await self._cdr_page(request, ctx, PAGE_SIZE)
        apps = await apps_of(self._db, ctx)
        return ctx.render(
            "cdrs.html",
            page=page,
            apps=apps,
            envs=ENVIRONMENTS,
            filters=filters,
            pager=pager(request, page),
            columns=CDR_COLUMNS,
            csv_query=request.url.query,
        )

    async def cdrs_csv(self, request: Request, ctx: Context) -> Response:
        """Every CDR the filters select (up to 100,000), UTF-8 with a BOM: spreadsheet tools
        then read the Chinese state descriptions and names right."""
        page, _filters = await self._cdr_page(request, ctx, CSV_MAX_ROWS, paged=False)
        out = io.StringIO()
        out.write("\ufeff")
        writer = csv.writer(out)
        writer.writerow(["id", "env", *CDR_COLUMNS, "charge", "created"])
        for row in page.rows:
            cdr = row["cdr"]
            writer.writerow(
                [
                    row["id"],
                    row["env"],
                    *[_csv_cell(cdr.get(column, "")) for column in CDR_COLUMNS],
                    f"{row['charge']:.2f}",
                    self._renderer.when(row["created_at"]),
                ]
            )
        return Response(
            out.getvalue().encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="cdrs.csv"'},
        )

    async def _cdr_page(
        self, request: Request, ctx: Context, limit: int, paged: bool = True
    ) -> tuple[Page, dict[str, str]]:
        query = request.query_params
        env = choice(query.get("env", ""), ENVIRONMENTS)
        app_id = query.get("app", "")[:64]
        called = query.get("called", "")[:64].strip()
        since, until = date_range(query, self._zone)
        async with self._db.reader() as uow:
            where = CdrFilter(app_id=app_id, env=env, called=called, since=since, until=until)
            page = await ConsoleReads(uow.connection).cdrs(
                ctx.user.scope, where, offset_of(query) if paged else 0, limit
            )
        for row in page.rows:
            row["cdr"] = json_object(row["body"])
        filters = {k: query.get(k, "") for k in ("env", "app", "called", "from", "to")}
        return page, filters


def _csv_cell(value: Any) -> str:
    """A cell a spreadsheet will not run as a formula (=, +, -, @ lead a formula)."""
    cell = str(value)
    if cell[:1] in ("=", "+", "-", "@") and not _is_number(cell):
        return "'" + cell
    return cell


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
