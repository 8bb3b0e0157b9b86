"""Readiness (`GET /readyz`): 200 with the roles once started and while the database answers;
503 with a reason otherwise; probes arriving together cost one query."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import Route

from telemeeting.api.health import READYZ_PATH, Readiness
from telemeeting.store.connection import DatabaseUnavailable
from telemeeting.store.unit_of_work import Database


class FakeDatabase:
    """A database whose `SELECT 1` fails, hangs or answers, counting the attempts."""

    def __init__(self, fail: Exception | None = None, hang: bool = False) -> None:
        self.fail = fail
        self.hang = hang
        self.queries = 0

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[Any]:
        self.queries += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.fail is not None:
            raise self.fail
        yield SimpleNamespace(connection=self)

    async def scalar(self, *_: Any) -> int:
        await asyncio.sleep(0.01)
        return 1


def node(db: Any, ready: bool = True, roles: frozenset[str] = frozenset({"api"})) -> Any:
    return SimpleNamespace(ready=ready, roles=roles, db=db)


async def get(readiness: Readiness) -> httpx.Response:
    app = Starlette(routes=[Route(READYZ_PATH, readiness.respond, methods=["GET"])])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        return await client.get(READYZ_PATH)


async def test_not_started_is_503_without_asking_the_database() -> None:
    db = FakeDatabase()
    response = await get(Readiness(node(db, ready=False)))
    assert response.status_code == 503
    assert response.json() == {"status": "not ready", "reason": "roles not started"}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert db.queries == 0


async def test_a_database_that_refuses_is_503() -> None:
    db = FakeDatabase(fail=DatabaseUnavailable("connection refused to 10.0.0.7"))
    response = await get(Readiness(node(db)))
    assert response.status_code == 503
    assert response.json() == {
        "status": "not ready",
        "reason": "database unreachable: DatabaseUnavailable",
    }
    assert "10.0.0.7" not in response.text  # details go to the log, not to anyone who asks


async def test_a_database_that_does_not_answer_in_time_is_503() -> None:
    started = asyncio.get_running_loop().time()
    response = await get(Readiness(node(FakeDatabase(hang=True)), timeout=0.2))
    assert asyncio.get_running_loop().time() - started < 2
    assert response.status_code == 503
    assert response.json()["reason"] == "database did not answer within 0.2 s"


async def test_started_with_a_database_that_answers_is_200_with_the_roles(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'tm.db'}")
    try:
        roles = frozenset({"clock", "api", "media", "dispatcher"})
        response = await get(Readiness(node(db, roles=roles)))
    finally:
        await db.dispose()
    assert response.status_code == 200
    expected = {"status": "ready", "roles": ["api", "media", "dispatcher", "clock"]}
    assert response.content == json.dumps(expected, separators=(",", ":")).encode()


async def test_probes_arriving_together_share_one_query_then_it_is_asked_again() -> None:
    now = [100.0]
    db = FakeDatabase()
    readiness = Readiness(node(db), reuse=0.5, clock=lambda: now[0])
    verdicts = await asyncio.gather(*(readiness.check() for _ in range(20)))
    assert all(verdict.ready for verdict in verdicts)
    assert db.queries == 1
    now[0] += 1.0
    assert (await readiness.check()).ready
    assert db.queries == 2


async def test_a_recovered_database_makes_the_node_ready_again() -> None:
    now = [0.0]
    db = FakeDatabase(fail=DatabaseUnavailable("down"))
    readiness = Readiness(node(db), reuse=0.5, clock=lambda: now[0])
    assert not (await readiness.check()).ready
    db.fail = None
    assert not (await readiness.check()).ready  # the failure answers for a moment
    now[0] += 0.6
    assert (await readiness.check()).ready
