"""The authentication chain of spec §3; the first failing check decides the code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from telemeeting.config import Settings
from telemeeting.network import Network, address_in, parse_networks
from telemeeting.service.directory import Directory
from telemeeting.store.records import Account, App
from telemeeting.wire.auth import (
    ClientClock,
    parse_authorization,
    sign_matches,
    timestamp_in_window,
)
from telemeeting.wire.environments import PRODUCTION
from telemeeting.wire.status import Status, WireError


@dataclass(frozen=True)
class Caller:
    account: Account
    timestamp: str
    #: What the timestamp says about the client's clock (its zone, for `booktime`).
    clock: ClientClock


class Authenticator:
    def __init__(self, directory: Directory, settings: Settings) -> None:
        self._directory = directory
        self._settings = settings

    async def account(
        self, sid: str, authorization: str | None, sign: str | None, now: datetime
    ) -> Caller:
        """Steps 1–3: the account, the Authorization header, the Sign."""
        account = await self._directory.account(sid)
        if account is None:
            raise WireError(Status.UNKNOWN_ACCOUNT, sid)
        if not account.enabled:
            raise WireError(Status.ACCOUNT_DISABLED, sid)
        parsed = parse_authorization(authorization)
        if parsed is None or parsed.account_sid != sid:
            raise WireError(Status.BAD_AUTHORIZATION, "malformed or for another account")
        auth = self._settings.auth
        if not timestamp_in_window(
            parsed.timestamp, now, self._settings.zone, auth.timestamp_window_seconds
        ):
            raise WireError(Status.BAD_AUTHORIZATION, "timestamp outside the window")
        if not sign_matches(sign, sid, account.auth_token, parsed.timestamp):
            raise WireError(Status.BAD_SIGN)
        clock = ClientClock(parsed.timestamp, now, self._settings.zone)
        return Caller(account, parsed.timestamp, clock)

    async def app(self, caller: Caller, appid: str, env: str, client_ip: str) -> App:
        """Step 6: the app exists, is the caller's, fits the environment, may be used from here."""
        app = await self._directory.app(appid)
        if (
            app is None
            or app.account_sid != caller.account.sid
            or app.env != env
            or (env == PRODUCTION and not app.online)
            or not app.has_meeting_feature
        ):
            raise WireError(Status.APP_CHECK_FAILED, f"app {appid} not usable here")
        if env == PRODUCTION and app.ip_whitelist.strip():
            allowed: list[Network] = parse_networks(app.ip_whitelist)
            if not address_in(client_ip, allowed):
                raise WireError(Status.APP_CHECK_FAILED, f"{client_ip} not whitelisted")
        return app
