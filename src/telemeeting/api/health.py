"""Readiness: `GET /readyz` answers 200 while this node has started its roles and its database
answers, 503 otherwise (liveness, `GET /healthz`, is only "the process answers HTTP").

A load balancer polls it, and nothing bounds how often: the database check is shared by the
probes that arrive together and reused for a moment, so a flood of probes costs one query (and
one connection of the pool) at a time, never one each.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response

from telemeeting.bootstrap import ROLES
from telemeeting.store.sql import Statement
from telemeeting.store.unit_of_work import Database

log = structlog.get_logger(__name__)

READYZ_PATH = "/readyz"
#: A database slower than this to answer `SELECT 1` makes the node not ready.
TIMEOUT_SECONDS = 1.0
#: How long one database check answers for the probes that follow it.
REUSE_SECONDS = 0.5
_PING = Statement("SELECT 1")


class Node(Protocol):
    """What readiness looks at (a `bootstrap.Platform`)."""

    @property
    def ready(self) -> bool: ...

    @property
    def roles(self) -> frozenset[str]: ...

    @property
    def db(self) -> Database: ...


@dataclass(frozen=True)
class Verdict:
    ready: bool
    reason: str = ""


class Readiness:
    def __init__(
        self,
        node: Node,
        timeout: float = TIMEOUT_SECONDS,
        reuse: float = REUSE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._node = node
        self._timeout = timeout
        self._reuse = reuse
        self._clock = clock
        self._lock = asyncio.Lock()
        self._checked_at: float | None = None
        self._database = Verdict(False, "not checked")

    async def check(self) -> Verdict:
        if not self._node.ready:
            return Verdict(False, "roles not started")
        return await self._database_answers()

    async def _database_answers(self) -> Verdict:
        async with self._lock:  # probes arriving together share one query
            now = self._clock()
            if self._checked_at is not None and now - self._checked_at < self._reuse:
                return self._database
            self._database = await self._ping()
            self._checked_at = self._clock()
            return self._database

    async def _ping(self) -> Verdict:
        try:
            async with asyncio.timeout(self._timeout):
                async with self._node.db.reader() as uow:
                    await uow.connection.scalar(_PING)
        except TimeoutError:
            reason, error = f"database did not answer within {self._timeout:g} s", ""
        except Exception as exc:  # the answer names the kind of failure, the log the details
            reason, error = f"database unreachable: {type(exc).__name__}", str(exc)
        else:
            return Verdict(True)
        log.warning("readiness.database", reason=reason, error=error or None)
        return Verdict(False, reason)

    async def respond(self, _request: Request) -> Response:
        verdict = await self.check()
        if verdict.ready:
            roles = [role for role in ROLES if role in self._node.roles]
            body = {"status": "ready", "roles": roles}
        else:
            body = {"status": "not ready", "reason": verdict.reason}
        return Response(
            orjson.dumps(body),
            status_code=200 if verdict.ready else 503,
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )
