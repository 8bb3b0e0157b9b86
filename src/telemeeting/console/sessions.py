"""Console sessions, CSRF tokens and the login rate limit.

A session is a random secret in an HttpOnly, SameSite=Strict cookie; the database keeps only its
SHA-256 (store/console.py), with the CSRF token and when it was last used. Every change must
carry that CSRF token (a synchronizer token: a hidden form field or the X-CSRF-Token header),
compared in constant time. A session unused for `idle_seconds` is gone, and every process that
shares the database sees a logout or a revocation at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from telemeeting.store.console import HOLDER, OPERATOR, SessionRepository, SessionRow
from telemeeting.store.unit_of_work import Database

COOKIE_NAME = "tm_console"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
#: A session's `seen_at` is written at most this often (not on every page view or SSE poll).
TOUCH_EVERY_SECONDS = 30.0


@dataclass(frozen=True)
class Principal:
    """Who is logged in: an operator (every account) or an account holder (their own)."""

    kind: str
    name: str

    @property
    def is_operator(self) -> bool:
        return self.kind == OPERATOR

    @property
    def scope(self) -> str:
        """The account filter of every listing: '' (all) for operators, else the SID."""
        return "" if self.is_operator else self.name

    def may_see(self, account_sid: str) -> bool:
        return self.is_operator or account_sid == self.name


@dataclass(frozen=True)
class Session:
    id: str
    principal: Principal
    csrf: str
    language: str


def session_id_of(secret: str) -> str:
    """The stored key of a cookie's secret: a leaked table logs nobody in."""
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def csrf_matches(session: Session, submitted: str | None) -> bool:
    if not submitted:
        return False
    return hmac.compare_digest(session.csrf.encode(), submitted.encode("utf-8", "replace"))


class SessionStore:
    def __init__(
        self, db: Database, idle_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = db
        self._idle = idle_seconds
        self._clock = clock

    async def open(self, principal: Principal, language: str) -> tuple[str, Session]:
        """A new session; returns the cookie's secret (shown to the browser only)."""
        secret = secrets.token_urlsafe(32)
        now = self._clock()
        row = SessionRow(
            id=session_id_of(secret),
            kind=principal.kind,
            principal=principal.name,
            csrf=secrets.token_urlsafe(32),
            language=language,
            created_at=now,
            seen_at=now,
        )
        async with self._db.unit_of_work() as uow:
            sessions = SessionRepository(uow.connection)
            await sessions.delete_idle(now - self._idle)
            await sessions.add(row)
        return secret, _session(row)

    async def find(self, secret: str | None) -> Session | None:
        """The live session of a cookie; an idle one is ended here."""
        if not secret or len(secret) > 256:
            return None
        session_id = session_id_of(secret)
        async with self._db.reader() as uow:
            row = await SessionRepository(uow.connection).get(session_id)
        if row is None or row.kind not in (OPERATOR, HOLDER):
            return None
        now = self._clock()
        if now - row.seen_at > self._idle:
            await self.close(secret)
            return None
        if now - row.seen_at > TOUCH_EVERY_SECONDS:
            async with self._db.unit_of_work() as uow:
                await SessionRepository(uow.connection).touch(session_id, now)
        return _session(row)

    async def close(self, secret: str) -> None:
        async with self._db.unit_of_work() as uow:
            await SessionRepository(uow.connection).delete(session_id_of(secret))


def _session(row: SessionRow) -> Session:
    return Session(row.id, Principal(row.kind, row.principal), row.csrf, row.language)


class LoginThrottle:
    """At most `attempts` failed logins per key (client address, user name) in `window`
    seconds; a success clears the user name's count. Kept in memory: the console is served by
    one process (docs/console.md), and a restart forgetting the count costs an attacker only
    one more window."""

    def __init__(
        self, attempts: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._attempts = attempts
        self._window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def allowed(self, keys: Iterable[str]) -> bool:
        now = self._clock()
        return all(len(self._recent(key, now)) < self._attempts for key in keys)

    def failed(self, keys: Iterable[str]) -> None:
        now = self._clock()
        for key in keys:
            self._recent(key, now).append(now)
        if len(self._failures) > 10_000:  # bound the memory a spray of addresses can take
            for key in [k for k, v in self._failures.items() if not v]:
                del self._failures[key]

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and now - times[0] >= self._window:
            times.popleft()
        return times
