"""Engines for SQLite (embedded default) and PostgreSQL, and migration on first use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

MIGRATIONS = Path(__file__).with_name("migrations")
#: Execution option marking read-only transactions (no write lock taken on SQLite).
READ_ONLY = "telemeeting_read_only"
_MIGRATION_LOCK_KEY = 0x7E1E_3E37  # pg_advisory_lock key: one migrator at a time


def normalize_url(url: str) -> str:
    """Accept plain `sqlite:///…` and `postgresql://…` URLs; use the async drivers."""
    for plain, driver in (
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def is_sqlite(url: str) -> bool:
    return normalize_url(url).startswith("sqlite")


def sqlite_path(url: str) -> str:
    """The file of a SQLite URL (created with its directory on first use)."""
    path = make_url(normalize_url(url)).database or ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    return path


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """A SQLAlchemy engine: migrations and schema inspection only; requests use `Database`."""
    url = normalize_url(url)
    if not is_sqlite(url):
        return create_async_engine(url, **kwargs)
    engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
    _make_sqlite_serialize_writers(engine)
    return engine


def _make_sqlite_serialize_writers(engine: AsyncEngine) -> None:
    """WAL, foreign keys, and BEGIN IMMEDIATE so that concurrent writers wait, not fail.

    pysqlite's own transaction handling would start a deferred transaction that can fail with
    SQLITE_BUSY when it upgrades to a write; we take the write lock up front instead.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # an answered request survives power loss
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


#: The newest migration; a database already there needs no Alembic run (a test keeps it true).
SCHEMA_HEAD = "0016"


def _upgrade(connection: Connection) -> None:
    from alembic import command  # imported here: most commands find the schema current
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def schema_version(url: str) -> str | None:
    """The database's migration revision; None for an empty database."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.scalar(text("SELECT version_num FROM alembic_version"))
    except DBAPIError:
        return None
    finally:
        await engine.dispose()


async def migrate(url: str) -> None:
    """Bring the schema to the newest revision; safe when several processes start at once."""
    if await schema_version(url) == SCHEMA_HEAD:
        return
    engine = create_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(
                    text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})")
                )
            await connection.run_sync(_upgrade)
    finally:
        await engine.dispose()
