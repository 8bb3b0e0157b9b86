"""Operator accounts of the console: creating them (the CLI) and checking their passwords (login).

Passwords are stored as argon2id hashes (argon2-cffi's defaults, which follow RFC 9106's
recommendations); a hash made with older parameters is upgraded on the next good login.
"""

from __future__ import annotations

import re
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from telemeeting.service.admin import AdminError
from telemeeting.store.console import (
    CLI,
    OPERATOR,
    AuditEntry,
    AuditRepository,
    Operator,
    OperatorRepository,
    SessionRepository,
)
from telemeeting.store.unit_of_work import Database

#: Operator names: what a person types, safe to show and to log.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # argon2 hashes any length; bound the work an attacker can ask for

_hasher = PasswordHasher()
#: Verified when the name is unknown, so that a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("telemeeting-console-no-such-operator")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AdminError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AdminError(f"a password has at most {MAX_PASSWORD_LENGTH} characters")


async def create_operator(db: Database, name: str, password: str, actor: str) -> Operator:
    """A new operator who can log in to the console and see every account."""
    if not NAME_PATTERN.fullmatch(name):
        raise AdminError(
            "an operator name is 1-64 letters, digits or ._@- and starts with a letter or digit"
        )
    check_new_password(password)
    operator = Operator(
        name=name, password_hash=hash_password(password), enabled=True, created_at=time.time()
    )
    async with db.unit_of_work() as uow:
        operators = OperatorRepository(uow.connection)
        if await operators.get(name) is not None:
            raise AdminError(f"operator {name} already exists")
        await operators.add(operator)
        await AuditRepository(uow.connection).record(
            AuditEntry(operator.created_at, CLI, actor, "", "operator.create", name)
        )
    return operator


async def verify_operator(db: Database, name: str, password: str) -> Operator | None:
    """The enabled operator with this name and password, else None (in about the same time)."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return None
    async with db.reader() as uow:
        operator = await OperatorRepository(uow.connection).get(name)
    stored = operator.password_hash if operator is not None else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if operator is None or not operator.enabled:
        return None
    if _hasher.check_needs_rehash(stored):
        async with db.unit_of_work() as uow:
            await OperatorRepository(uow.connection).set_password_hash(
                name, hash_password(password)
            )
    return operator


async def set_operator_enabled(db: Database, name: str, enabled: bool, actor: str) -> Operator:
    """Enable or disable an operator; disabling also ends their console sessions."""
    async with db.unit_of_work() as uow:
        operators = OperatorRepository(uow.connection)
        if not await operators.set_enabled(name, enabled):
            raise AdminError(f"no operator {name}")
        if not enabled:
            await SessionRepository(uow.connection).delete_of(OPERATOR, name)
        action = "operator.enable" if enabled else "operator.disable"
        await AuditRepository(uow.connection).record(
            AuditEntry(time.time(), CLI, actor, "", action, name)
        )
        operator = await operators.get(name)
    assert operator is not None
    return operator


async def all_operators(db: Database) -> list[Operator]:
    async with db.reader() as uow:
        return await OperatorRepository(uow.connection).all()
