"""Portable SQL written once with `:name` parameters and prepared once per dialect.

The statements are constants of the code (never built from request data), so turning `:name`
into asyncpg's `$n` is a one-time rewrite at import, not work on the request path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any

_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class Dialect(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgresql"


@dataclass(frozen=True)
class Prepared:
    """A statement in one dialect: the text the driver takes and the order of its parameters."""

    text: str
    names: tuple[str, ...]

    def positional(self, params: Mapping[str, Any] | None) -> list[Any]:
        if not self.names:
            return []
        assert params is not None, f"parameters missing for: {self.text}"
        return [params[name] for name in self.names]


@dataclass(frozen=True)
class Statement:
    """One statement; `postgres`/`sqlite` replace the portable text where the dialects differ."""

    sql: str
    postgres: str | None = None
    sqlite: str | None = None
    _prepared: dict[Dialect, Prepared] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    def text(self, dialect: Dialect) -> str:
        special = self.postgres if dialect is Dialect.POSTGRES else self.sqlite
        return special if special is not None else self.sql

    def prepared(self, dialect: Dialect) -> Prepared:
        found = self._prepared.get(dialect)
        if found is None:
            found = self._prepared[dialect] = _prepare(self.text(dialect), dialect)
        return found


def _prepare(text: str, dialect: Dialect) -> Prepared:
    if dialect is Dialect.SQLITE:
        return Prepared(text, tuple(_PARAMETER.findall(text)))
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return Prepared(_PARAMETER.sub(number, text), tuple(names))


@cache
def update_columns(table: str, columns: tuple[str, ...], key: str) -> Statement:
    """`UPDATE table SET c = :c, … WHERE key = :key`, built once per set of changed columns."""
    assignments = ", ".join(f"{column} = :{column}" for column in columns)
    return Statement(f"UPDATE {table} SET {assignments} WHERE {key} = :{key}")


@cache
def insert_columns(table: str, columns: tuple[str, ...]) -> Statement:
    names = ", ".join(columns)
    values = ", ".join(f":{column}" for column in columns)
    return Statement(f"INSERT INTO {table} ({names}) VALUES ({values})")
