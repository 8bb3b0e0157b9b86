"""Session, CSRF, rate-limit and language logic without a browser."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from telemeeting.console import i18n
from telemeeting.console.sessions import (
    LoginThrottle,
    Principal,
    Session,
    SessionStore,
    csrf_matches,
    session_id_of,
)
from telemeeting.store.console import HOLDER, OPERATOR, SessionRepository
from telemeeting.store.unit_of_work import Database
from tests.servers import migrated_database


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def db(sqlite_db: str) -> AsyncIterator[Database]:
    """SQLite alone, not conftest's `db` on both kinds: this logic does not depend on the kind."""
    async with migrated_database(sqlite_db) as database:
        yield database


async def test_a_session_ends_when_idle_and_on_close(db: Database) -> None:
    clock = Clock()
    store = SessionStore(db, idle_seconds=60, clock=clock)
    secret, session = await store.open(Principal(HOLDER, "sid1"), "en")
    assert session.id == session_id_of(secret) != secret  # only the hash is stored
    async with db.reader() as uow:
        assert await SessionRepository(uow.connection).get(secret) is None
    clock.now += 59
    assert await store.find(secret) == session  # used: its idle time starts again
    clock.now += 59
    assert await store.find(secret) is not None
    clock.now += 61
    assert await store.find(secret) is None
    secret, _ = await store.open(Principal(OPERATOR, "ops"), "zh-CN")
    await store.close(secret)
    assert await store.find(secret) is None
    assert await store.find("") is None and await store.find("x" * 1000) is None


def test_csrf_token_must_match_exactly() -> None:
    session = Session("id", Principal(HOLDER, "sid"), "token-123", "en")
    assert csrf_matches(session, "token-123")
    for wrong in (None, "", "token-12", "token-1234", "TOKEN-123", "令牌"):
        assert not csrf_matches(session, wrong)


def test_principals_see_their_scope() -> None:
    holder, operator = Principal(HOLDER, "a"), Principal(OPERATOR, "ops")
    assert holder.scope == "a" and holder.may_see("a") and not holder.may_see("b")
    assert operator.scope == "" and operator.may_see("anything")


def test_login_throttle_counts_failures_per_key_within_the_window() -> None:
    clock = Clock()
    throttle = LoginThrottle(attempts=2, window=10, clock=clock)
    keys = ["ip:1", "user:a"]
    assert throttle.allowed(keys)
    throttle.failed(keys)
    throttle.failed(keys)
    assert not throttle.allowed(keys)
    assert not throttle.allowed(["ip:1", "user:b"])  # the address is limited
    assert throttle.allowed(["ip:2", "user:b"])
    clock.now += 10
    assert throttle.allowed(keys)
    throttle.failed(["user:a"])
    throttle.succeeded("user:a")
    assert throttle.allowed(["user:a"])


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, "en"),
        ("", "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("fr-FR, zh-TW;q=0.5", "zh-CN"),
        ("de", "en"),
        ("en;q=0.1, zh;q=0.2", "zh-CN"),
        ("zh;q=bad", "en"),
    ],
)
def test_accept_language(header: str | None, language: str) -> None:
    assert i18n.negotiate(header) == language


def test_a_chosen_language_wins_and_unknown_texts_fall_back() -> None:
    assert i18n.choose("zh-CN", "en") == "zh-CN"
    assert i18n.choose("klingon", "zh") == "zh-CN"
    assert i18n.translator("zh-CN")("Log in") == "登录"
    assert i18n.translator("zh-CN")("no such text") == "no such text"
    assert i18n.translator("en")("Log in") == "Log in"
