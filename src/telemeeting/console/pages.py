"""The console's pages: each reads through the store's console queries or changes through
`ConsoleActions` (the service layer), then renders a template or redirects (POST, redirect, GET).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from telemeeting.console import i18n
from telemeeting.console.actions import ConsoleActions, ConsoleError, NotFound
from telemeeting.console.sessions import COOKIE_NAME, LoginThrottle
from telemeeting.console.web import Context, Guard, read_form, text
from telemeeting.domain.model import Meeting, MeetingState
from telemeeting.store.attempts import AttemptRepository
from telemeeting.store.console_reads import NO_END, NO_START, ConsoleReads, Page
from telemeeting.store.outbox import STATES as PUSH_STATES
from telemeeting.store.unit_of_work import Database
from telemeeting.wire.environments import ENVIRONMENTS

PAGE_SIZE = 50
MEETING_STATES = tuple(state.value for state in MeetingState)
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


class Pages:
    def __init__(
        self,
        db: Database,
        actions: ConsoleActions,
        guard: Guard,
        throttle: LoginThrottle,
        zone: ZoneInfo,
    ) -> None:
        self._db = db
        self._actions = actions
        self._guard = guard
        self._throttle = throttle
        self._zone = zone

    # ---- login --------------------------------------------------------------------------

    async def login_form(self, request: Request, ctx: Context) -> Response:
        if ctx.session is not None:
            return RedirectResponse("/", status_code=303)
        return ctx.render("login.html", error="")

    async def login(self, request: Request, ctx: Context) -> Response:
        form = await read_form(request)
        client = request.client.host if request.client else ""
        operator = "username" in form
        name = text(form, "username" if operator else "sid", 128)
        secret = text(form, "password" if operator else "token", 1024)
        keys = [f"ip:{client}", f"user:{name}"]
        throttle = self._throttle
        if not throttle.allowed(keys):
            message = "Too many failed logins; try again in a few minutes."
            return ctx.render("login.html", status=429, error=message)
        if operator:
            user = await self._actions.operator_login(name, secret)
        else:
            user = await self._actions.holder_login(name.strip(), secret.strip())
        if user is None:
            throttle.failed(keys)
            wrong = "Wrong user name or password." if operator else "Wrong SID or token."
            return ctx.render("login.html", status=401, error=wrong)
        throttle.succeeded(f"user:{name}")
        secret_cookie, _session = await self._guard.sessions.open(user, ctx.language)
        await self._actions.record_login(user, client)
        response = RedirectResponse("/", status_code=303)
        self._guard.login_cookie(response, secret_cookie)
        return response

    async def logout(self, request: Request, ctx: Context) -> Response:
        await self._guard.sessions.close(request.cookies.get(COOKIE_NAME, ""))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/")
        return response

    async def language(self, request: Request, ctx: Context) -> Response:
        """Switch language (a cookie: it is a preference of the browser, not a change)."""
        choice = request.query_params.get("lang", "")
        back = request.headers.get("referer", "/")
        target = back if back.startswith(str(request.base_url)) else "/"
        response = RedirectResponse(target, status_code=303)
        if choice in i18n.LANGUAGES:
            response.set_cookie(
                i18n.LANGUAGE_COOKIE, choice, max_age=365 * 86400, samesite="lax", path="/"
            )
        return response

    # ---- overview -----------------------------------------------------------------------

    async def overview(self, request: Request, ctx: Context) -> Response:
        user = ctx.user
        async with self._db.reader() as uow:
            overview = await ConsoleReads(uow.connection).overview(user.scope)
            account = None if user.is_operator else await uow.accounts.get(user.name)
        return ctx.render("overview.html", overview=overview, account=account)

    # ---- meetings -----------------------------------------------------------------------

    async def meetings(self, request: Request, ctx: Context) -> Response:
        query = request.query_params
        state = _choice(query.get("state", ""), MEETING_STATES)
        env = _choice(query.get("env", ""), ENVIRONMENTS)
        app_id = query.get("app", "")[:64]
        since, until = self._dates(query)
        offset = _offset(query)
        async with self._db.reader() as uow:
            reads = ConsoleReads(uow.connection)
            page = await reads.meetings(
                ctx.user.scope,
                state=state,
                app_id=app_id,
                env=env,
                since=since,
                until=until,
                offset=offset,
                limit=PAGE_SIZE,
            )
            apps = await reads.apps(ctx.user.scope)
        filters = {k: query.get(k, "") for k in ("state", "env", "app", "from", "to")}
        return ctx.render(
            "meetings.html",
            page=page,
            apps=apps,
            filters=filters,
            states=MEETING_STATES,
            envs=ENVIRONMENTS,
            pager=_pager(request, page),
        )

    async def create_meeting(self, request: Request, ctx: Context) -> Response:
        form = await read_form(request)
        meeting_id = await self._actions.create_meeting(
            ctx.user, text(form, "app", 64), text(form, "meetingname", 200)
        )
        return RedirectResponse(f"/meetings/{meeting_id}", status_code=303)

    async def meeting(self, request: Request, ctx: Context) -> Response:
        meeting_id = request.path_params["meeting_id"]
        app, meeting = await self._actions.meeting(ctx.user, meeting_id)
        events = await self.meeting_events(ctx, meeting_id)
        return ctx.render(
            "meeting.html", app=app, meeting=meeting, members=members_of(meeting), events=events
        )

    async def meeting_events(self, ctx: Context, meeting_id: str) -> list[dict[str, Any]]:
        async with self._db.reader() as uow:
            page = await ConsoleReads(uow.connection).events(
                ctx.user.scope, meeting_id=meeting_id, limit=200
            )
        return [_with_body(row) for row in page.rows]

    async def meeting_change(self, request: Request, ctx: Context) -> Response:
        meeting_id = request.path_params["meeting_id"]
        action = request.path_params["action"]
        form = await read_form(request)
        user = ctx.user
        if action == "invite":
            await self._actions.invite(
                user, meeting_id, text(form, "name", 200), text(form, "phone", 64)
            )
        elif action in ("mute", "unmute"):
            await self._actions.set_muted(
                user, meeting_id, text(form, "phone", 64), action == "mute"
            )
        elif action == "kick":
            await self._actions.kick(user, meeting_id, text(form, "phone", 64))
        elif action == "end":
            await self._actions.end(user, meeting_id)
        else:
            raise NotFound("Not found")
        return done(request, f"/meetings/{meeting_id}")

    # ---- pushes -------------------------------------------------------------------------

    async def pushes(self, request: Request, ctx: Context) -> Response:
        query = request.query_params
        state = _choice(query.get("state", ""), PUSH_STATES)
        app_id = query.get("app", "")[:64]
        offset = _offset(query)
        async with self._db.reader() as uow:
            reads = ConsoleReads(uow.connection)
            page = await reads.events(
                ctx.user.scope, state=state, app_id=app_id, offset=offset, limit=PAGE_SIZE
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
            pager=_pager(request, page),
        )

    async def push(self, request: Request, ctx: Context) -> Response:
        event_id = request.path_params["event_id"]
        async with self._db.reader() as uow:
            page = await ConsoleReads(uow.connection).events(ctx.user.scope, event_id=event_id)
            if not page.rows:
                raise NotFound("Not found")
            attempts = await AttemptRepository(uow.connection, uow.dialect).of_events([event_id])
        event = _with_body(page.rows[0])
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
        apps = await self._apps(ctx)
        return ctx.render(
            "cdrs.html",
            page=page,
            apps=apps,
            envs=ENVIRONMENTS,
            filters=filters,
            pager=_pager(request, page),
            columns=CDR_COLUMNS,
            csv_query=request.url.query,
        )

    async def cdrs_csv(self, request: Request, ctx: Context) -> Response:
        """Every CDR the filters select (up to 100,000), UTF-8 with a BOM: spreadsheet tools
        then read the Chinese state descriptions and names right."""
        page, _filters = await self._cdr_page(request, ctx, 100_000, paged=False)
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
                    self._guard.renderer.when(row["created_at"]),
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
        env = _choice(query.get("env", ""), ENVIRONMENTS)
        app_id = query.get("app", "")[:64]
        called = query.get("called", "")[:64].strip()
        since, until = self._dates(query)
        async with self._db.reader() as uow:
            page = await ConsoleReads(uow.connection).cdrs(
                ctx.user.scope,
                app_id=app_id,
                env=env,
                called=called,
                since=since,
                until=until,
                offset=_offset(query) if paged else 0,
                limit=limit,
            )
        for row in page.rows:
            row["cdr"] = _json_object(row["body"])
        filters = {k: query.get(k, "") for k in ("env", "app", "called", "from", "to")}
        return page, filters

    # ---- apps ---------------------------------------------------------------------------

    async def apps(self, request: Request, ctx: Context) -> Response:
        apps = await self._apps(ctx)
        return ctx.render("apps.html", apps=apps, envs=ENVIRONMENTS)

    async def create_app(self, request: Request, ctx: Context) -> Response:
        form = await read_form(request)
        account_sid = text(form, "account", 64) if ctx.user.is_operator else ctx.user.name
        await self._actions.create_app(
            ctx.user,
            account_sid=account_sid.strip(),
            env=text(form, "env", 16),
            name=text(form, "name", 200),
            callback_url=text(form, "callback_url", 2000),
            ip_whitelist=text(form, "ip_whitelist", 2000),
        )
        return RedirectResponse("/apps", status_code=303)

    async def update_app(self, request: Request, ctx: Context) -> Response:
        form = await read_form(request)
        await self._actions.update_app(
            ctx.user,
            request.path_params["app_id"],
            callback_url=text(form, "callback_url", 2000),
            ip_whitelist=text(form, "ip_whitelist", 2000),
            online=text(form, "online", 8) == "1",
        )
        return RedirectResponse("/apps", status_code=303)

    async def _apps(self, ctx: Context) -> list[dict[str, Any]]:
        async with self._db.reader() as uow:
            return await ConsoleReads(uow.connection).apps(ctx.user.scope)

    # ---- accounts (operators) -----------------------------------------------------------

    async def accounts(self, request: Request, ctx: Context) -> Response:
        if not ctx.user.is_operator:
            raise NotFound("Not found")
        async with self._db.reader() as uow:
            page = await ConsoleReads(uow.connection).accounts(
                _offset(request.query_params), PAGE_SIZE
            )
        return ctx.render("accounts.html", page=page, pager=_pager(request, page))

    async def create_account(self, request: Request, ctx: Context) -> Response:
        form = await read_form(request)
        await self._actions.create_account(
            ctx.user, text(form, "name", 200), text(form, "balance", 32)
        )
        return RedirectResponse("/accounts", status_code=303)

    async def account_change(self, request: Request, ctx: Context) -> Response:
        sid = request.path_params["sid"]
        action = request.path_params["action"]
        form = await read_form(request)
        if action in ("enable", "disable"):
            await self._actions.set_account_enabled(ctx.user, sid, action == "enable")
        elif action == "topup":
            await self._actions.top_up(ctx.user, sid, text(form, "amount", 32))
        else:
            raise NotFound("Not found")
        return RedirectResponse("/accounts", status_code=303)

    # ---- audit --------------------------------------------------------------------------

    async def audit(self, request: Request, ctx: Context) -> Response:
        offset = _offset(request.query_params)
        rows = await self._actions.recent_changes(ctx.user, offset, PAGE_SIZE + 1)
        page = Page(
            [vars(row) for row in rows[:PAGE_SIZE]], offset, PAGE_SIZE, len(rows) > PAGE_SIZE
        )
        return ctx.render("audit.html", page=page, pager=_pager(request, page))

    # ---- helpers ------------------------------------------------------------------------

    def _dates(self, query: Mapping[str, str]) -> tuple[float, float]:
        """`from` and `to` (YYYY-MM-DD, both days included) in the platform's time zone."""
        since, until = NO_START, NO_END
        start = _date(query.get("from", ""))
        end = _date(query.get("to", ""))
        if start is not None:
            since = datetime.combine(start, time(), self._zone).timestamp()
        if end is not None:
            until = datetime.combine(end + timedelta(days=1), time(), self._zone).timestamp()
        return since, until


#: Sent by console.js when it submits a form itself (the live meeting page stays as it is).
FETCH_HEADER = "x-console-fetch"


def done(request: Request, url: str) -> Response:
    """After a change: the page to go to, or for console.js's own submissions 204 (the live
    stream shows the change)."""
    if request.headers.get(FETCH_HEADER) == "1":
        return Response(status_code=204)
    return RedirectResponse(url, status_code=303)


def members_of(meeting: Meeting) -> list[dict[str, Any]]:
    """The member rows of a meeting page, as queryMeeting describes members."""
    return [
        {
            "phone": leg.phone,
            "name": leg.name,
            "state": leg.state.value,
            "state_desc": leg.state_desc,
            "joined": leg.answered_at,
            "left": leg.ended_at if leg.answered_at is not None else None,
            "muted": leg.muted,
            "live": leg.live,
        }
        for leg in meeting.legs
    ]


def _with_body(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "payload": _json_object(row.get("body", ""))}


def _json_object(body: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


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


def _choice(value: str, allowed: tuple[str, ...]) -> str:
    return value if value in allowed else ""


def _offset(query: Mapping[str, str]) -> int:
    page = query.get("page", "1")
    number = int(page) if page.isdigit() and len(page) < 7 else 1
    return (max(1, number) - 1) * PAGE_SIZE


def _date(value: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ConsoleError("Not a date (YYYY-MM-DD).") from exc


def _pager(request: Request, page: Page) -> dict[str, str]:
    """Links to the previous and next page, keeping the filters."""
    number = page.offset // PAGE_SIZE + 1
    links: dict[str, str] = {"number": str(number)}
    params = dict(request.query_params)
    if number > 1:
        links["previous"] = f"{request.url.path}?{urlencode({**params, 'page': number - 1})}"
    if page.more:
        links["next"] = f"{request.url.path}?{urlencode({**params, 'page': number + 1})}"
    return links
