"""The console's tables on SQLite and PostgreSQL: operators, sessions, audit log, and every push
delivery attempt kept by the outbox's settle (the console's Pushes page shows them)."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from telemeeting.cli import cli
from telemeeting.console.operators import create_operator, verify_operator
from telemeeting.service.admin import AdminError
from telemeeting.store.attempts import AttemptRepository
from telemeeting.store.console import AuditRepository, OperatorRepository
from telemeeting.store.outbox import DEAD, PENDING, Delivery, Outcome
from telemeeting.store.unit_of_work import Database
from tests.servers import new_app


async def test_operator_password_is_hashed_and_checked(db: Database) -> None:
    await create_operator(db, "alice", "correct horse", actor="root")
    async with db.reader() as uow:
        stored = await OperatorRepository(uow.connection).get("alice")
        audit = await AuditRepository(uow.connection).recent()
    assert stored is not None and stored.password_hash.startswith("$argon2id$")
    assert "correct horse" not in stored.password_hash
    assert await verify_operator(db, "alice", "correct horse") is not None
    assert await verify_operator(db, "alice", "wrong horse!") is None
    assert await verify_operator(db, "nobody", "correct horse") is None
    assert [(a.actor_kind, a.actor, a.action, a.target) for a in audit] == [
        ("cli", "root", "operator.create", "alice")
    ]
    with pytest.raises(AdminError):
        await create_operator(db, "alice", "another one", actor="root")
    with pytest.raises(AdminError):
        await create_operator(db, "<b>", "long enough", actor="root")


async def test_settle_keeps_every_attempt(db: Database) -> None:
    app = await new_app(db)
    delivery = Delivery(
        "ev1", "m1", 1, "CallState", "{}", 1, time.time(), "http://x/", "s", app.appid
    )
    second = Delivery(
        "ev1", "m1", 1, "CallState", "{}", 2, time.time(), "http://x/", "s", app.appid
    )
    async with db.unit_of_work() as uow:
        await uow.outbox.settle(
            [Outcome(delivery, PENDING, time.time() + 1, "HTTP 500", 100.0, 500, 12.5)]
        )
    async with db.unit_of_work() as uow:
        await uow.outbox.settle([Outcome(second, DEAD, time.time(), "ConnectError", 101.0)])
    async with db.reader() as uow:
        found = await AttemptRepository(uow.connection, uow.dialect).of_events(["ev1", "nope"])
    assert [(a.attempt, a.status, a.latency_ms, a.outcome, a.error) for a in found["ev1"]] == [
        (1, 500, 12.5, "pending", "HTTP 500"),
        (2, None, None, "dead", "ConnectError"),
    ]
    assert "nope" not in found


def test_operator_create_cli(sqlite_db: str) -> None:
    runner = CliRunner()
    argv = ["operator", "create", "ops", "--password-stdin", "--json", "--db", sqlite_db]
    result = runner.invoke(cli, argv, input="s3cret-pass\n")
    assert result.exit_code == 0, result.output
    assert '"name": "ops"' in result.stdout and "argon2" not in result.stdout
    again = runner.invoke(cli, argv, input="s3cret-pass\n")
    assert again.exit_code == 1 and "already exists" in again.stderr
    short = runner.invoke(cli, [*argv[:2], "other", *argv[3:]], input="short\n")
    assert short.exit_code == 1 and "at least 8" in short.stderr
    listed = runner.invoke(cli, ["operator", "list", "--json", "--db", sqlite_db])
    assert '"ops"' in listed.stdout


async def test_disabling_an_operator_ends_their_sessions(db: Database) -> None:
    from telemeeting.console.operators import set_operator_enabled
    from telemeeting.console.sessions import Principal, SessionStore
    from telemeeting.store.console import OPERATOR

    await create_operator(db, "bob", "bobs password", actor="root")
    sessions = SessionStore(db, idle_seconds=600)
    secret, _ = await sessions.open(Principal(OPERATOR, "bob"), "en")
    assert await sessions.find(secret) is not None
    disabled = await set_operator_enabled(db, "bob", False, actor="root")
    assert not disabled.enabled
    assert await sessions.find(secret) is None
    assert await verify_operator(db, "bob", "bobs password") is None
    with pytest.raises(AdminError):
        await set_operator_enabled(db, "nobody", False, actor="root")
