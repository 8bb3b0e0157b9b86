"""Shared fixtures: databases (SQLite and PostgreSQL) and running servers; how the suite is
spread over pytest-xdist workers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import (
    Api,
    Server,
    Tenant,
    database_url,
    drop_pg_database,
    start_server,
)

#: Tests that run real-time audio (SIP peers, RTP, the mixer's clock) or bind shared port ranges:
#: one xdist group, so they run one after another on one worker, never beside each other.
REALTIME = ("tests/sip/", "tests/media/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `pytest -n N --dist loadgroup` (scripts/test): each module is a group of its own
    (its module-scoped servers start once), the real-time tests one group together."""
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        group = "realtime" if module.startswith(REALTIME) else module
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def db_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def server(db_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One running `telemeeting serve` per database kind, shared by the API tests."""
    tmp = tmp_path_factory.mktemp(f"server-{db_kind}")
    url = database_url(db_kind, tmp)
    running = start_server(url, tmp)
    yield running
    running.stop()
    if db_kind == "postgres":
        drop_pg_database(url)


@pytest.fixture(scope="session")
def tenant(server: Server) -> Tenant:
    return server.new_tenant()


@pytest.fixture
def api(server: Server, tenant: Tenant) -> Api:
    return Api(server, tenant)


@pytest.fixture
def fresh_db(db_kind: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the current kind, for tests that start their own server."""
    url = database_url(db_kind, tmp_path)
    yield url
    if db_kind == "postgres":
        drop_pg_database(url)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> str:
    """An empty SQLite database, for behaviour that does not depend on the database kind."""
    return database_url("sqlite", tmp_path)
