"""What a console user may do, for the pages: each change checks that the user may touch the
account concerned, calls the same service function as the API or the CLI, and records who did
what in the audit log.

The audit row is written right after the change commits (the service functions own their
transactions); a crash between the two loses the audit row, never the change's own record.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog

from telemeeting.bootstrap import Platform
from telemeeting.console.operators import verify_operator
from telemeeting.console.sessions import Principal
from telemeeting.domain import errors
from telemeeting.domain.model import Meeting
from telemeeting.service import accounts, admin
from telemeeting.service.acceptance import Acceptance
from telemeeting.store.console import (
    HOLDER,
    OPERATOR,
    AuditEntry,
    AuditRepository,
    OperatorRepository,
    SessionRepository,
)
from telemeeting.store.console_reads import ConsoleReads, EventFilter
from telemeeting.store.records import Account, App
from telemeeting.store.repositories import ALL_LEGS
from telemeeting.wire import actions
from telemeeting.wire.environments import ENVIRONMENTS
from telemeeting.wire.phones import parse_phone

log = structlog.get_logger(__name__)
T = TypeVar("T")


class ConsoleError(Exception):
    """A refusal to show the user: `message` is English (translated by the page), `status`
    the HTTP status of the page that shows it."""

    status = 400

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class NotFound(ConsoleError):
    status = 404


class Forbidden(ConsoleError):
    status = 403


_DOMAIN_MESSAGES: dict[type[errors.DomainError], str] = {
    errors.MeetingNotFound: "Meeting not found.",
    errors.MeetingEnded: "The meeting has ended.",
    errors.MeetingFull: "The meeting is full.",
    errors.MemberAlreadyIn: "That member is already in the meeting.",
    errors.MemberNotFound: "That member is not in the meeting.",
}


class ConsoleActions:
    def __init__(self, platform: Platform) -> None:
        self._platform = platform
        self._db = platform.db

    # ---- what the user may see ----------------------------------------------------------

    async def app(self, user: Principal, appid: str) -> App:
        async with self._db.reader() as uow:
            app = await uow.apps.get(appid)
        if app is None or not user.may_see(app.account_sid):
            raise NotFound("Not found")
        return app

    async def account(self, user: Principal, sid: str) -> Account:
        if not user.may_see(sid):
            raise NotFound("Not found")
        async with self._db.reader() as uow:
            account = await uow.accounts.get(sid)
        if account is None:
            raise NotFound("Not found")
        return account

    async def meeting(self, user: Principal, meeting_id: str) -> tuple[App, Meeting]:
        """A meeting the user may see, with all its legs; another account's is not found."""
        async with self._db.reader() as uow:
            place = await ConsoleReads(uow.connection).meeting_place(meeting_id)
            if place is None or not user.may_see(place["account_sid"]):
                raise NotFound("Meeting not found.")
            app = await uow.apps.get(place["app_id"])
        if app is None:
            raise NotFound("Meeting not found.")
        return app, await self.read_meeting(app, place["meid"], meeting_id)

    async def read_meeting(self, app: App, meid: str, meeting_id: str) -> Meeting:
        """The meeting as it is now, for a user already allowed to see it (the live stream
        reads it every poll: one statement, no lock)."""
        async with self._db.reader() as uow:
            meeting = await uow.meetings.read(app.appid, meid)
            if meeting is not None and meeting.id != meeting_id:
                # An older meeting whose room number a newer one reuses: by id instead.
                meeting = await uow.meetings.get(meeting_id, ALL_LEGS)
        if meeting is None:
            raise NotFound("Meeting not found.")
        return meeting

    # ---- meetings -----------------------------------------------------------------------

    async def create_meeting(self, user: Principal, appid: str, name: str) -> str:
        app = await self.app(user, appid)
        _check_name(name)
        request = actions.CreateMeeting(meeting_name=name)
        meid = await self._meeting_change(
            lambda accept: self._platform.service.create_meeting(app, request, accept)
        )
        async with self._db.reader() as uow:
            meeting = await uow.meetings.read(app.appid, meid)
        assert meeting is not None
        await self._audit(user, app.account_sid, "meeting.create", meeting.id, name=name, meid=meid)
        return meeting.id

    async def invite(self, user: Principal, meeting_id: str, name: str, phone_text: str) -> None:
        app, meeting = await self.meeting(user, meeting_id)
        _check_name(name)
        phone = parse_phone(phone_text.strip())
        if phone is None:
            raise ConsoleError("Not a valid phone number.")
        request = actions.Invite(confid=meeting.meid, parties=(actions.Party(phone, name),))
        await self._meeting_change(
            lambda accept: self._platform.service.invite(app, request, accept)
        )
        await self._audit(
            user, app.account_sid, "meeting.invite", meeting.id, phone=phone.wire, name=name
        )

    async def set_muted(self, user: Principal, meeting_id: str, phone: str, muted: bool) -> None:
        app, meeting = await self.meeting(user, meeting_id)
        request = actions.MemberRef(confid=meeting.meid, phone=phone)
        await self._meeting_change(
            lambda accept: self._platform.service.set_muted(app, request, muted, accept)
        )
        action = "meeting.mute" if muted else "meeting.unmute"
        await self._audit(user, app.account_sid, action, meeting.id, phone=phone)

    async def kick(self, user: Principal, meeting_id: str, phone: str) -> None:
        app, meeting = await self.meeting(user, meeting_id)
        request = actions.MemberRef(confid=meeting.meid, phone=phone)
        await self._meeting_change(
            lambda accept: self._platform.service.kick_member(app, request, accept)
        )
        await self._audit(user, app.account_sid, "meeting.kick", meeting.id, phone=phone)

    async def end(self, user: Principal, meeting_id: str) -> None:
        app, meeting = await self.meeting(user, meeting_id)
        request = actions.MeetingRef(confid=meeting.meid)
        await self._meeting_change(
            lambda accept: self._platform.service.destroy_meeting(app, request, accept)
        )
        await self._audit(user, app.account_sid, "meeting.end", meeting.id, meid=meeting.meid)

    async def _meeting_change(self, change: Callable[[Acceptance], Awaitable[T]]) -> T:
        """Run a meeting use case as the API would, with a request id of its own."""
        accept = Acceptance(self._platform.request_ids.next(datetime.now(UTC)))
        try:
            return await change(accept)
        except errors.DomainError as exc:
            message = _DOMAIN_MESSAGES.get(type(exc)) or str(exc)
            raise ConsoleError(message or "Something went wrong; the change was not made.") from exc

    # ---- pushes -------------------------------------------------------------------------

    async def redeliver(self, user: Principal, event_id: str) -> None:
        async with self._db.reader() as uow:
            page = await ConsoleReads(uow.connection).events(
                user.scope, EventFilter(event_id=event_id)
            )
        if not page.rows:
            raise NotFound("Not found")
        event = page.rows[0]
        async with self._db.unit_of_work() as uow:
            count = await uow.outbox.redeliver(time.time(), event_id=event_id)
            self._wake_dispatcher(uow)
        if not count:
            raise ConsoleError("This push is only stored, never sent (sandbox or no callback URL).")
        await self._audit(user, event["account_sid"], "push.redeliver", event_id)

    async def redeliver_dead(self, user: Principal, appid: str) -> int:
        app = await self.app(user, appid)
        async with self._db.unit_of_work() as uow:
            count = await uow.outbox.redeliver(time.time(), app_id=app.appid)
            self._wake_dispatcher(uow)
        await self._audit(user, app.account_sid, "push.redeliver_dead", app.appid, count=count)
        return count

    def _wake_dispatcher(self, uow: Any) -> None:
        """On SQLite only this process's dispatcher can be woken (PostgreSQL notifies all)."""
        dispatcher = self._platform.dispatcher
        if dispatcher is not None:
            uow.after_commit(dispatcher.wake)

    # ---- apps ---------------------------------------------------------------------------

    async def create_app(
        self,
        user: Principal,
        *,
        account_sid: str,
        env: str,
        name: str,
        callback_url: str,
        ip_whitelist: str,
    ) -> App:
        await self.account(user, account_sid)
        if env not in ENVIRONMENTS:
            raise ConsoleError("env must be production or sandbox")
        _check_name(name)
        app = await _admin(
            admin.create_app(
                self._db,
                account_sid=account_sid,
                env=env,
                name=name,
                callback_url=callback_url.strip(),
                ip_whitelist=ip_whitelist.strip(),
            )
        )
        await self._audit(user, account_sid, "app.create", app.appid, env=env, name=name)
        return app

    async def update_app(
        self, user: Principal, appid: str, *, callback_url: str, ip_whitelist: str, online: bool
    ) -> App:
        app = await self.app(user, appid)
        values = {
            "callback_url": callback_url.strip(),
            "ip_whitelist": ip_whitelist.strip(),
            "online": online,
        }
        updated = await _admin(admin.update_app(self._db, app.appid, **values))
        changed = {k: v for k, v in values.items() if getattr(app, k) != v}
        await self._audit(user, app.account_sid, "app.update", app.appid, **changed)
        return updated

    # ---- accounts (operators only) ------------------------------------------------------

    async def create_account(self, user: Principal, name: str, balance_text: str) -> Account:
        _operator_only(user)
        _check_name(name)
        balance = _amount(balance_text) if balance_text.strip() else None
        account = await _admin(admin.create_account(self._db, name=name, balance=balance))
        await self._audit(user, account.sid, "account.create", account.sid, name=name)
        return account

    async def set_account_enabled(self, user: Principal, sid: str, enabled: bool) -> None:
        _operator_only(user)
        await _admin(admin.set_account_enabled(self._db, sid, enabled))
        if not enabled:  # the holder's console sessions end with the account
            async with self._db.unit_of_work() as uow:
                await SessionRepository(uow.connection).delete_of(HOLDER, sid)
        action = "account.enable" if enabled else "account.disable"
        await self._audit(user, sid, action, sid)

    async def top_up(self, user: Principal, sid: str, amount_text: str) -> float:
        _operator_only(user)
        amount = _amount(amount_text)
        balance = await _admin(accounts.top_up(self._db, sid, amount, f"console:{user.name}"))
        await self._audit(user, sid, "account.topup", sid, amount=amount, balance=balance)
        return balance

    # ---- the audit log ------------------------------------------------------------------

    async def holder_login(self, sid: str, token: str) -> Principal | None:
        """The account holder whose SID and auth token these are (an enabled account)."""
        if not sid or not token or len(sid) > 64 or len(token) > 256:
            return None
        async with self._db.reader() as uow:
            account = await uow.accounts.get(sid)
        if account is None or not account.enabled:
            return None
        if not hmac.compare_digest(account.auth_token.encode(), token.encode("utf-8", "replace")):
            return None
        return Principal(HOLDER, account.sid)

    async def operator_login(self, name: str, password: str) -> Principal | None:
        operator = await verify_operator(self._db, name, password)
        return Principal(OPERATOR, operator.name) if operator is not None else None

    async def still_allowed(self, user: Principal) -> bool:
        """A session outlives neither its operator's nor its account's disabling."""
        async with self._db.reader() as uow:
            if user.is_operator:
                operator = await OperatorRepository(uow.connection).get(user.name)
                return operator is not None and operator.enabled
            account = await uow.accounts.get(user.name)
            return account is not None and account.enabled

    async def record_login(self, user: Principal, client: str) -> None:
        await self._audit(user, user.scope, "login", user.name, client=client)

    async def recent_changes(self, user: Principal, offset: int, limit: int) -> list[AuditEntry]:
        async with self._db.reader() as uow:
            return await AuditRepository(uow.connection).recent(user.scope, limit, offset)

    async def _audit(
        self, user: Principal, account_sid: str, action: str, target: str, **detail: Any
    ) -> None:
        entry = AuditEntry(
            at=time.time(),
            actor_kind=user.kind,
            actor=user.name,
            account_sid=account_sid,
            action=action,
            target=target,
            detail=json.dumps(detail, ensure_ascii=False, default=str) if detail else "",
        )
        try:
            async with self._db.unit_of_work() as uow:
                await AuditRepository(uow.connection).record(entry)
        except Exception:  # the change itself is done and recorded by its own transaction
            log.exception("console.audit_failed", action=action, target=target)


def _check_name(name: str) -> None:
    if len(name) > actions.NAME_MAX:
        raise ConsoleError("A name has at most 64 characters.")


def _amount(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError as exc:
        raise ConsoleError("Not a number.") from exc
    if value != value or value in (float("inf"), float("-inf")):
        raise ConsoleError("Not a number.")
    return value


def _operator_only(user: Principal) -> None:
    if not user.is_operator:
        raise Forbidden("Forbidden")


async def _admin(work: Awaitable[T]) -> T:
    """An operator use case; its refusal (AdminError) becomes a message on the page."""
    try:
        return await work
    except admin.AdminError as exc:
        raise ConsoleError(str(exc)) from exc
