"""The ASGI app: one route for `/{version}/sid/{accountSID}/{func}/{funcURL}` (spec §1).

Action requests go straight to `ApiEndpoint` on plain ASGI (api/raw.py: the hot path);
everything else (health, metrics, recordings, stray paths) through Starlette's router.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from telemeeting.api.account import ACCOUNT_HANDLERS
from telemeeting.api.actions import HANDLERS, MUTATING
from telemeeting.api.admission import AdmissionControl
from telemeeting.api.health import READYZ_PATH, Readiness
from telemeeting.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from telemeeting.api.idempotency import IdempotencyGate, body_hash, parse_key
from telemeeting.api.metrics import ACTION_KEY, METRICS_PATH, UNKNOWN, Metrics, status_code
from telemeeting.api.raw import ApiRequest, BodyTooLarge, send_json
from telemeeting.api.recordings import PATH as RECORDINGS_PATH
from telemeeting.api.recordings import RecordingDownload
from telemeeting.bootstrap import Platform
from telemeeting.domain import errors
from telemeeting.network import client_address
from telemeeting.service.acceptance import Acceptance
from telemeeting.service.billing import may_dial
from telemeeting.service.recordings import RecordingLinks
from telemeeting.store.connection import DatabaseUnavailable
from telemeeting.store.idempotency import Claim, IdempotencyKey
from telemeeting.wire import actions as wa
from telemeeting.wire.body import MAX_BODY_BYTES, parse_body
from telemeeting.wire.endpoints import CALL, PATH_PATTERN, VERSION, VERSIONS, actions_at, prefix
from telemeeting.wire.envelope import CONTENT_TYPE, dump, envelope
from telemeeting.wire.environments import PRODUCTION, SANDBOX
from telemeeting.wire.params import required
from telemeeting.wire.status import Status, WireError

log = structlog.get_logger(__name__)

__all__ = ["FUNC", "VERSION", "create_app", "healthz", "is_api_request"]
#: The meeting API's path parts (bench/ builds its baseline app from them).
FUNC = CALL
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"]
_API_PREFIXES = tuple(prefix(version) for version in sorted(VERSIONS))
#: The actions that dial: refused with -204 when a billed account has nothing left to spend.
_DIALLING = frozenset({wa.CREATE_MEETING, wa.INVITE})
HEALTHZ_PATH = "/healthz"
_IDEMPOTENCY_HEADER = IDEMPOTENCY_HEADER.lower()
_HEALTHY = b'{"status":"ok"}'
_JSON = {"Content-Type": CONTENT_TYPE}

_DOMAIN_STATUS: dict[type[errors.DomainError], Status] = {
    errors.MeetingNotFound: Status.MEETING_NOT_FOUND,
    errors.MeetingEnded: Status.MEETING_ENDED,
    errors.MeetingFull: Status.MEETING_FULL,
    errors.MemberAlreadyIn: Status.MEMBER_ALREADY_IN,
    errors.MemberNotFound: Status.MEMBER_NOT_FOUND,
    errors.InvalidRequest: Status.INVALID_PARAMETER,
}


#: An answer: HTTP status and the serialized envelope.
Answer = tuple[int, bytes]


def _respond(
    status: Status, request_id: str = "", http_status: int = 200, **extra: object
) -> Answer:
    return http_status, dump(envelope(status, request_id, **extra))


async def _read_body(request: ApiRequest) -> bytes:
    """The body, refusing (-101) anything over 64 KiB without reading it all."""
    try:
        return await request.body(MAX_BODY_BYTES)
    except BodyTooLarge as exc:
        raise WireError(Status.INVALID_PARAMETER, "body over 64 KiB") from exc


#: Pauses between attempts to free an Idempotency-Key while the database is unavailable.
_RELEASE_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4)


async def _release(gate: IdempotencyGate, key: IdempotencyKey) -> None:
    """Free the key of a request that was not accepted. A database that was just lost is often
    back a moment later (a pool reconnecting): try again briefly, because a key left held stays
    with this failed attempt for the whole lease (60 s), and the repeat the client was told to
    send would wait for it."""
    for delay in _RELEASE_RETRY_DELAYS:
        try:
            await gate.release(key)
            return
        except DatabaseUnavailable:
            await asyncio.sleep(delay)
    await gate.release(key)


class ApiEndpoint:
    """The whole request pipeline, in the order of spec §3."""

    def __init__(self, platform: Platform, metrics: Metrics | None = None) -> None:
        self.platform = platform
        self._metrics = metrics
        settings = platform.settings.server
        self._sandbox_port = settings.sandbox_port
        self._by_host = settings.environment_by == "host"
        self._idempotency = IdempotencyGate(platform.db)

    def environment(self, request: ApiRequest) -> str:
        if self._by_host:
            host = (request.header("host") or "").split(":")[0]
            return SANDBOX if host.split(".")[0].lower() == SANDBOX else PRODUCTION
        return SANDBOX if request.server_port == self._sandbox_port else PRODUCTION

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request to an API path; count and time it when it is an action request
        (a POST), by action and statusCode."""
        started = time.perf_counter()
        http_status, body = await self.answer(ApiRequest(scope, receive))
        await send_json(send, http_status, body)
        if self._metrics is not None and scope["method"] == "POST":
            action = scope.get(ACTION_KEY, UNKNOWN)
            self._metrics.observe(action, status_code(body), time.perf_counter() - started)

    async def answer(self, request: ApiRequest) -> Answer:
        match = PATH_PATTERN.fullmatch(request.path)  # `$` would allow a trailing newline
        served = actions_at(match["version"], match["func"], match["func_url"]) if match else None
        if match is None or served is None:
            return _respond(Status.INVALID_ACTION, http_status=404)
        if request.method != "POST":
            return _respond(Status.INTERNAL_ERROR, http_status=405)
        now = datetime.now(UTC)
        try:
            return await self._handle(request, match["sid"], served, now)
        except WireError as exc:
            log.info("api.refused", code=exc.status.code, detail=exc.detail, path=request.path)
            return _respond(exc.status)
        except errors.DomainError as exc:
            status = _DOMAIN_STATUS.get(type(exc), Status.INVALID_PARAMETER)
            log.info("api.refused", code=status.code, detail=str(exc), path=request.path)
            return _respond(status)
        except DatabaseUnavailable as exc:
            # Not our bug but the database's absence: one line (no traceback to flood the log
            # with while it lasts) and the retryable answer; nothing of the request was kept.
            log.warning("api.database_unavailable", detail=str(exc), path=request.path)
            return _respond(Status.DATABASE_UNAVAILABLE)
        except Exception:
            incident = self.platform.request_ids.next(now)
            log.exception("api.internal_error", request_id=incident, path=request.path)
            return _respond(Status.INTERNAL_ERROR, incident)

    async def _handle(
        self, request: ApiRequest, sid: str, served: frozenset[str], now: datetime
    ) -> Answer:
        platform = self.platform
        caller = await platform.authenticator.account(
            sid, request.header("authorization"), request.query("Sign"), now
        )
        body = parse_body(await _read_body(request))
        action = body.get("action")
        if action is None or action == "":
            raise WireError(Status.MISSING_PARAMETER, "action is required")
        if not isinstance(action, str) or action not in served:
            raise WireError(Status.INVALID_ACTION, f"{action!r} on {request.path}")
        request.scope[ACTION_KEY] = action  # the label of this request's metrics
        appid = required(body, "appid")
        client_ip = client_address(
            request.client_host, request.header("x-forwarded-for"), platform.trusted_proxies
        )
        app = await platform.authenticator.app(caller, appid, self.environment(request), client_ip)
        if not platform.limiter.allow(caller.account.sid):
            raise WireError(Status.RATE_LIMITED)
        if action in _DIALLING and not may_dial(caller.account, app):
            raise WireError(Status.NO_BALANCE)
        if action in ACCOUNT_HANDLERS:  # balance and CDR pull: reads of the caller's account
            extra = await ACCOUNT_HANDLERS[action](platform.accounts, app, body)
            request_id = platform.request_ids.next(now)
            log.info("api.accepted", action=action, appid=appid, request_id=request_id)
            return _respond(Status.OK, request_id, **extra)
        key = self._idempotency_key(request, action, caller.account.sid)
        if key is not None:
            claim = await self._idempotency.claim(key, body_hash(body))
            if claim.outcome is Claim.REPLAY and claim.response is not None:
                log.info("api.replayed", action=action, appid=appid, key=key.key)
                first = dict(claim.response)
                return _respond(Status.OK, first.pop("requestId"), **first)
        request_id = platform.request_ids.next(now)
        try:
            accept = Acceptance(request_id, key, caller.clock)
            extra = await HANDLERS[action](platform.service, app, body, accept)
        except BaseException:
            if key is not None:
                await _release(self._idempotency, key)
            raise
        log.info("api.accepted", action=action, appid=appid, request_id=request_id)
        return _respond(Status.OK, request_id, **extra)

    @staticmethod
    def _idempotency_key(request: ApiRequest, action: str, sid: str) -> IdempotencyKey | None:
        value = request.header(_IDEMPOTENCY_HEADER)
        if value is None or action not in MUTATING:
            return None
        return IdempotencyKey(sid, parse_key(value))


async def healthz(_request: Request) -> Response:
    """Liveness: the process is up and answers HTTP. Readiness (database, roles) is not judged
    here, and the check is never refused by admission control."""
    return Response(_HEALTHY, media_type="application/json")


async def not_found(_request: Request) -> Response:
    """A path that is no API path: the envelope's -3, as the real platform answers."""
    http_status, body = _respond(Status.INVALID_ACTION, http_status=404)
    return Response(body, status_code=http_status, media_type=None, headers=_JSON)


def is_api_request(scope: Scope) -> bool:
    """A request for an action (what admission control counts); not a health check, not a 404."""
    return scope["method"] == "POST" and scope["path"].startswith(_API_PREFIXES)


def _recordings(platform: Platform) -> RecordingDownload:
    return RecordingDownload(platform.db, RecordingLinks.from_settings(platform.settings))


def create_app(platform: Platform) -> AdmissionControl:
    """The API role's ASGI app. It starts nothing: `serve` starts the process's roles (the
    carrier, dispatcher and clock need not live where the API does)."""
    metrics = Metrics(platform)
    endpoint = ApiEndpoint(platform, metrics)
    others = Starlette(
        routes=[
            # GET (and HEAD); other methods: 404 -3. None is counted by admission control.
            Route(HEALTHZ_PATH, healthz, methods=["GET"]),
            Route(READYZ_PATH, Readiness(platform).respond, methods=["GET"]),
            Route(METRICS_PATH, metrics.respond, methods=["GET"]),
            Route(RECORDINGS_PATH, _recordings(platform).respond, methods=["GET"]),  # issue 14
            # Any other path, by any method: 404 -3.
            Route("/{path:path}", not_found, methods=_ALL_METHODS),
        ],
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(_API_PREFIXES):
            await endpoint(scope, receive, send)  # it answers 404 and 405 itself
        else:
            await others(scope, receive, send)

    limit = platform.settings.server.max_in_flight
    admission = AdmissionControl(app, limit, is_api_request)
    metrics.watch(admission)
    return admission
