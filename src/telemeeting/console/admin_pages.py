"""The pages that manage apps (holders: their own) and accounts (operators only)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from telemeeting.console.actions import ConsoleActions, NotFound
from telemeeting.console.listing import PAGE_SIZE, apps_of, offset_of, pager
from telemeeting.console.web import Context, read_form, text
from telemeeting.store.console_reads import ConsoleReads
from telemeeting.store.unit_of_work import Database
from telemeeting.wire.environments import ENVIRONMENTS


class AdminPages:
    def __init__(self, db: Database, actions: ConsoleActions) -> None:
        self._db = db
        self._actions = actions

    # ---- apps ---------------------------------------------------------------------------

    async def apps(self, request: Request, ctx: Context) -> Response:
        apps = await apps_of(self._db, ctx)
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

    # ---- accounts (operators) -----------------------------------------------------------

    async def accounts(self, request: Request, ctx: Context) -> Response:
        if not ctx.user.is_operator:
            raise NotFound("Not found")
        async with self._db.reader() as uow:
            page = await ConsoleReads(uow.connection).accounts(
                offset_of(request.query_params), PAGE_SIZE
            )
        return ctx.render("accounts.html", page=page, pager=pager(request, page))

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
