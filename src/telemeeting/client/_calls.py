"""The I/O-free half of the SDK, shared by `Client` and `AsyncClient`.

It turns each method's arguments into a `Call` (action, funcURL, body, whether a retry is safe),
signs it with `telemeeting.wire.auth` at send time, reads the envelope into a result or an
exception, and decides whether a failed attempt may be retried. The two clients only move bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from telemeeting.client.errors import RateLimitError, TeleMeetingError, TransportError, error_for
from telemeeting.client.models import Party, PartyLike, parties_to_wire
from telemeeting.wire import account as wire_account
from telemeeting.wire import actions as wa
from telemeeting.wire import cdr as wire_cdr
from telemeeting.wire.auth import TIMESTAMP_FORMAT, signed_headers
from telemeeting.wire.endpoints import CALL, VERSION, path
from telemeeting.wire.idempotency import HEADER, valid_key
from telemeeting.wire.status import Status

PRODUCTION_URL = "http://api.ytx.net"
SANDBOX_URL = "http://sandbox.ytx.net"
IDEMPOTENCY_HEADER = HEADER

ENV_ACCOUNT_SID = "TELEMEETING_ACCOUNT_SID"
ENV_AUTH_TOKEN = "TELEMEETING_AUTH_TOKEN"
ENV_APP_ID = "TELEMEETING_APP_ID"
ENV_BASE_URL = "TELEMEETING_BASE_URL"


@dataclass(frozen=True)
class Call:
    """One request to make. `idempotent`: repeating it cannot dial anyone twice."""

    action: str
    func_url: str
    params: dict[str, Any]
    idempotent: bool
    headers: dict[str, str] = field(default_factory=dict)
    func: str = CALL
    version: str = VERSION


@dataclass(frozen=True)
class RetryPolicy:
    """How failed attempts are repeated.

    Retried: a connection that could not be opened (nothing reached the server), for any call;
    timeouts, dropped connections, HTTP 5xx without an envelope and -104, only for idempotent
    calls (queries, and calls given an idempotency key). Delays double from `backoff` up to
    `max_backoff`.
    """

    retries: int = 2
    backoff: float = 0.25
    max_backoff: float = 4.0

    def delay(self, attempt: int) -> float:
        return min(self.backoff * (2**attempt), self.max_backoff)


def _never_sent(exc: httpx.TransportError) -> bool:
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _idempotency_headers(key: str | None) -> dict[str, str]:
    if key is None:
        return {}
    if not valid_key(key):  # the server's own rule: refused here, not as a transport error
        raise ValueError("an idempotency key is 1-128 printable ASCII characters")
    return {IDEMPOTENCY_HEADER: key}


def _book_time(value: datetime | str, zone: ZoneInfo) -> str:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=zone)
        return moment.astimezone(zone).strftime(TIMESTAMP_FORMAT)
    return value


class Calls:
    """Credentials, base URL and the knowledge of the wire; no I/O."""

    def __init__(
        self,
        account_sid: str | None,
        auth_token: str | None,
        app_id: str | None,
        base_url: str | None,
        zone: ZoneInfo | str,
        retry: RetryPolicy,
    ) -> None:
        self.account_sid = account_sid or os.environ.get(ENV_ACCOUNT_SID, "")
        self.auth_token = auth_token or os.environ.get(ENV_AUTH_TOKEN, "")
        self.app_id = app_id or os.environ.get(ENV_APP_ID, "")
        missing = [
            name
            for name, value in (
                ("account_sid", self.account_sid),
                ("auth_token", self.auth_token),
                ("app_id", self.app_id),
            )
            if not value
        ]
        if missing:
            raise ValueError(
                f"missing {', '.join(missing)} (pass them or set {ENV_ACCOUNT_SID}, "
                f"{ENV_AUTH_TOKEN}, {ENV_APP_ID})"
            )
        base = base_url or os.environ.get(ENV_BASE_URL) or PRODUCTION_URL
        self.base_url = base.rstrip("/")
        self.zone = ZoneInfo(zone) if isinstance(zone, str) else zone
        self.retry = retry

    # ---- building ------------------------------------------------------------------------------

    def request(self, call: Call) -> tuple[str, dict[str, str], bytes]:
        """URL, headers and body of one attempt, signed now (each retry is signed afresh)."""
        headers, sign = signed_headers(
            self.account_sid, self.auth_token, datetime.now(UTC), self.zone
        )
        headers.update(call.headers)
        where = path(call.version, self.account_sid, call.func, call.func_url)
        url = f"{self.base_url}{where}?Sign={sign}"
        body = {"action": call.action, "appid": self.app_id, **call.params}
        return url, headers, json.dumps(body, ensure_ascii=False).encode("utf-8")

    def create_meeting(
        self,
        *,
        meeting_name: str | None,
        creator: str | None,
        parties: Iterable[PartyLike] | None,
        confid: str | None,
        srcclid: str | None,
        dstclid: str | None,
        shownumber: str | None,
        book_time: datetime | str | None,
        max_members: int | None,
        custom_parm: str | None,
        idempotency_key: str | None,
        record: bool | None = None,
        beep: int | None = None,
        end_on_creator_leave: bool | None = None,
        speaker_events: bool | None = None,
        dialin: bool | None = None,
        pin: str | None = None,
    ) -> Call:
        params: dict[str, Any] = {}
        optional = {
            "meetingname": meeting_name,
            "creator": creator,
            "confid": confid,
            "srcclid": srcclid,
            "dstclid": dstclid,
            "shownumber": shownumber,
            "maxmembers": max_members,
            "CustomParm": custom_parm,
        }
        params.update({key: value for key, value in optional.items() if value is not None})
        flags = {  # **extensions** (issue 14)
            "record": record,
            "endoncreatorleave": end_on_creator_leave,
            "speakerevents": speaker_events,
        }
        params.update({key: "1" if on else "0" for key, on in flags.items() if on is not None})
        if beep is not None:
            params["beep"] = str(beep)
        if dialin is not None:  # **extension** (issue 15)
            params["dialin"] = "1" if dialin else "0"
        if pin is not None:
            params["pin"] = pin
        if parties is not None:
            params["parties"] = parties_to_wire(parties)
        if book_time is not None:
            params["bookmeeting"] = "1"
            params["booktime"] = _book_time(book_time, self.zone)
        return Call(
            wa.CREATE_MEETING,
            wa.TELEMEETING,
            params,
            idempotent=idempotency_key is not None,
            headers=_idempotency_headers(idempotency_key),
        )

    def invite(
        self,
        meid: str,
        parties: Iterable[PartyLike],
        custom_parm: str | None,
        idempotency_key: str | None,
    ) -> Call:
        params: dict[str, Any] = {"confid": meid, "parties": parties_to_wire(parties)}
        if custom_parm is not None:
            params["CustomParm"] = custom_parm
        return Call(
            wa.INVITE,
            wa.TELEMEETING,
            params,
            idempotent=idempotency_key is not None,
            headers=_idempotency_headers(idempotency_key),
        )

    def on_meeting(self, action: str, meid: str, idempotency_key: str | None) -> Call:
        return Call(
            action,
            wa.TELEMEETING,
            {"confid": meid},
            idempotent=idempotency_key is not None,
            headers=_idempotency_headers(idempotency_key),
        )

    def on_member(self, action: str, meid: str, phone: str, idempotency_key: str | None) -> Call:
        # mute/unmute are naturally idempotent; kick is not (the second one is -304).
        return Call(
            action,
            wa.TELEMEETING,
            {"confid": meid, "phone": phone},
            idempotent=idempotency_key is not None or action != wa.KICK_MEMBER,
            headers=_idempotency_headers(idempotency_key),
        )

    def play_prompt(
        self,
        meid: str,
        text: str | None,
        url: str | None,
        phone: str | None,
        loop: bool,
        idempotency_key: str | None,
    ) -> Call:
        if (text is None) == (url is None):
            raise ValueError("give exactly one of text and url")
        params: dict[str, Any] = {"confid": meid}
        params.update({k: v for k, v in (("text", text), ("url", url), ("phone", phone)) if v})
        if loop:
            params["loop"] = "1"
        return Call(
            wa.PLAY_PROMPT,
            wa.TELEMEETING,
            params,
            idempotent=idempotency_key is not None,
            headers=_idempotency_headers(idempotency_key),
        )

    def stop_prompt(self, meid: str, phone: str | None, idempotency_key: str | None) -> Call:
        # Stopping what is already silent changes nothing: safe to repeat.
        params = {"confid": meid, **({"phone": phone} if phone else {})}
        return Call(
            wa.STOP_PROMPT,
            wa.TELEMEETING,
            params,
            idempotent=True,
            headers=_idempotency_headers(idempotency_key),
        )

    def query_meeting(self, meid: str) -> Call:
        return Call(wa.QUERY_MEETING, wa.MEETING_QUERY, {"confid": meid}, idempotent=True)

    def meeting_events(self, meid: str, after: int, limit: int) -> Call:
        params = {"confid": meid, "after": after, "limit": limit}
        return Call(wa.QUERY_EVENTS, wa.MEETING_QUERY, params, idempotent=True)

    @staticmethod
    def balance() -> Call:
        return Call(
            wire_account.QUERY_BALANCE,
            wire_account.GET_BALANCE,
            {},
            idempotent=True,
            func=wire_account.FUNC,
        )

    @staticmethod
    def cdrs_after(last_request_id: str, limit: int, last_called: str | None) -> Call:
        params: dict[str, Any] = {"lastresid": last_request_id, "limit": limit}
        if last_called is not None:
            params["lastcalled"] = last_called
        return Call(
            wire_cdr.BY_REQUEST,
            wire_cdr.CALL_CDR,
            params,
            idempotent=True,
            version=wire_cdr.VERSIONS[0],
        )

    @staticmethod
    def cdrs_in_hour(day: date | str, hour: int) -> Call:
        text = day.strftime("%Y%m%d") if isinstance(day, date) else day
        return Call(
            wire_cdr.BY_TIME,
            wire_cdr.CALL_CDR,
            {"pdate": text, "ptime": hour},
            idempotent=True,
            version=wire_cdr.VERSIONS[0],
        )

    # ---- reading -------------------------------------------------------------------------------

    @staticmethod
    def envelope(response: httpx.Response) -> dict[str, Any]:
        """The envelope of a successful call, or the exception its status code calls for."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "statusCode" not in body:
            raise TransportError(
                f"HTTP {response.status_code}: not a ytx response", http_status=response.status_code
            )
        code = str(body.get("statusCode"))
        if code == Status.OK.code:
            return body
        raise error_for(
            code,
            str(body.get("statusMsg", "")),
            str(body.get("requestId", "") or ""),
            http_status=response.status_code,
            body=body,
        )

    def may_retry(self, call: Call, error: Exception, attempt: int) -> bool:
        if attempt >= self.retry.retries:
            return False
        if isinstance(error, httpx.TransportError):
            return _never_sent(error) or call.idempotent
        if isinstance(error, RateLimitError):
            return call.idempotent
        if isinstance(error, TransportError):  # no envelope: a proxy's 502/503, say
            return call.idempotent and (error.http_status or 0) >= 500
        return False

    @staticmethod
    def transport_error(error: Exception) -> TeleMeetingError:
        """What the caller sees once retries are exhausted."""
        if isinstance(error, TeleMeetingError):
            return error
        name = type(error).__name__
        failure = TransportError(f"{name}: {error}" if str(error) else name)
        failure.__cause__ = error
        return failure


def cdr_page(envelope: Mapping[str, Any]) -> list[dict[str, Any]]:
    records = envelope.get(wire_cdr.CDR_FIELD) or []
    return [record for record in records if isinstance(record, dict)]


def meeting_events_page(envelope: Mapping[str, Any]) -> list[dict[str, Any]]:
    events = envelope.get("events") or []
    return [event for event in events if isinstance(event, dict)]


def single(parties: Iterable[PartyLike] | PartyLike) -> Iterable[PartyLike]:
    """Let `invite(meid, Party(...))` or a single dict or phone mean a list of one."""
    if isinstance(parties, Party | Mapping | str):
        return [parties]
    return parties  # type: ignore[return-value]
