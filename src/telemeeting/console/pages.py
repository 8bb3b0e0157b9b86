"""The console's own pages: logging in and out, the language, the overview, meetings (the list,
a live meeting and its buttons) and the audit log. Each reads through the store's console
queries or changes through `ConsoleActions` (the service layer), then renders a template or
redirects (POST, redirect, GET). Pushes and CDRs are in delivery.py, apps and accounts in
admin_pages.py.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from telemeeting.console import i18n
from telemeeting.console.actions import ConsoleActions, NotFound
from telemeeting.console.listing import (
    PAGE_SIZE,
    choice,
    date_range,
    done,
    offset_of,
    pager,
    with_body,
)
from telemeeting.console.sessions import COOKIE_NAME, LoginThrottle
from telemeeting.console.web import Context, Guard, read_form, text
from telemeeting.domain.model import Meeting, MeetingState
from telemeeting.store.console_reads import ConsoleReads, EventFilter, MeetingFilter, Page
from telemeeting.store.unit_of_work import Database
from telemeeting.wire.environments import ENVIRONMENTS

MEETING_STATES = tuple(state.value for state in MeetingState)


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
        state = choice(query.get("state", ""), MEETING_STATES)
        env = choice(query.get("env", ""), ENVIRONMENTS)
        app_id = query.get("app", "")[:64]
        since, until = date_range(query, self._zone)
        offset = offset_of(query)
        async with self._db.reader() as uow:
            reads = ConsoleReads(uow.connection)
            where = MeetingFilter(state=state, app_id=app_id, env=env, since=since, until=until)
            page = await reads.meetings(ctx.user.scope, where, offset=offset, limit=PAGE_SIZE)
            apps = await reads.apps(ctx.user.scope)
        filters = {k: query.get(k, "") for k in ("state", "env", "app", "from", "to")}
        return ctx.render(
            "meetings.html",
            page=page,
            apps=apps,
            filters=filters,
            states=MEETING_STATES,
            envs=ENVIRONMENTS,
            pager=pager(request, page),
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
                ctx.user.scope, EventFilter(meeting_id=meeting_id), limit=200
            )
        return [with_body(row) for row in page.rows]

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

    # ---- audit --------------------------------------------------------------------------

    async def audit(self, request: Request, ctx: Context) -> Response:
        offset = offset_of(request.query_params)
        rows = await self._actions.recent_changes(ctx.user, offset, PAGE_SIZE + 1)
        page = Page(
            [vars(row) for row in rows[:PAGE_SIZE]], offset, PAGE_SIZE, len(rows) > PAGE_SIZE
        )
        return ctx.render("audit.html", page=page, pager=pager(request, page))


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
