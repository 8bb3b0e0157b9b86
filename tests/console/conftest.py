"""A real `telemeeting serve` with its web console on 127.0.0.1, and Debian's Chromium driven by
Playwright (no browser download: `executable_path`). Under CI=true a missing browser fails."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from telemeeting.store.unit_of_work import Database
from tests.servers import (
    CI,
    Server,
    Tenant,
    database_url,
    drop_pg_database,
    free_port,
    migrated_database,
    start_server,
    with_database,
)

T = TypeVar("T")
OPERATOR = ("ops", "operator-password-1")
#: Pushes give up fast, so that a failing receiver makes an event dead within the test.
FAST_PUSHES = {
    "TELEMEETING_CALLBACKS_RETRY_INITIAL_SECONDS": "0.2",
    "TELEMEETING_CALLBACKS_GIVE_UP_AFTER_SECONDS": "1.0",
    "TELEMEETING_CALLBACKS_TIMEOUT_SECONDS": "2",
}


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def off_loop(work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `work` in another thread: Playwright's sync API keeps an event loop running in this
    one, where `asyncio.run` (the database helpers) cannot start another."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work, *args, **kwargs).result()


@dataclass
class Console:
    server: Server
    url: str

    def tenant(self) -> Tenant:
        return off_loop(self.server.new_tenant)

    def make_app(self, account_sid: str, env: str, **options: Any) -> str:
        return off_loop(self.server.make_app, account_sid, env, **options)

    def read(self, work: Callable[[Database], Awaitable[T]]) -> T:
        return off_loop(with_database, self.server.db, work)


def start_console(tmp: Path, env: dict[str, str] | None = None, kind: str = "sqlite") -> Console:
    from telemeeting.console.operators import create_operator

    url = database_url(kind, tmp)
    port = free_port()
    server = start_server(
        url, tmp, env={**FAST_PUSHES, **(env or {})}, extra_args=("--console-port", str(port))
    )
    with_database(url, lambda db: create_operator(db, *OPERATOR, actor="tests"))
    return Console(server, f"http://127.0.0.1:{port}")


@pytest.fixture
async def db(fresh_db: str) -> AsyncIterator[Database]:
    """A migrated database of each kind, for the store-level console tests (no server)."""
    async with migrated_database(fresh_db) as database:
        yield database


@pytest.fixture(scope="module")
def console(db_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """The console on SQLite and on PostgreSQL."""
    # Off the loop: the browser fixture of an earlier module may still be running Playwright's.
    running = off_loop(start_console, tmp_path_factory.mktemp(f"console-{db_kind}"), kind=db_kind)
    yield running
    running.server.stop()
    if db_kind == "postgres":
        off_loop(drop_pg_database, running.server.db)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        message = "Debian's chromium is needed for the console tests (scripts/test installs it)"
        if CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=path, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, console: Console) -> Iterator[Any]:
    """A fresh browser context (no cookies) on the console."""
    context = browser.new_context(base_url=console.url, locale="en-US", accept_downloads=True)
    context.set_default_timeout(15_000)
    opened = context.new_page()
    opened.dialogs = []  # an alert() here would be an injected script that ran
    opened.on("dialog", lambda dialog: (opened.dialogs.append(dialog.message), dialog.dismiss()))
    yield opened
    context.close()


def log_in_holder(page: Any, tenant: Tenant) -> None:
    page.goto("/login")
    form = page.locator("#holder-login")
    form.locator("input[name=sid]").fill(tenant.sid)
    form.locator("input[name=token]").fill(tenant.token)
    form.locator("[data-action=login]").click()
    page.wait_for_url(re.compile(r".*/$"))


def log_in_operator(page: Any, name: str = OPERATOR[0], password: str = OPERATOR[1]) -> None:
    page.goto("/login")
    form = page.locator("#operator-login")
    form.locator("input[name=username]").fill(name)
    form.locator("input[name=password]").fill(password)
    form.locator("[data-action=login]").click()
    page.wait_for_url(re.compile(r".*/$"))


def reload_until(page: Any, url: str, selector: str, seconds: float) -> None:
    """Open `url` again until `selector` is on it or `seconds` pass: what the server does in the
    background (a push given up, a redelivery) shows on the next load, not on the open page.
    The caller's own assertions then say what is missing."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        page.goto(url)
        if page.locator(selector).count():
            return
        time.sleep(0.2)


def csrf_of(page: Any) -> str:
    return str(page.locator("input[name=csrf_token]").first.get_attribute("value"))


def screenshot_path() -> Path | None:
    """Where to keep the live meeting screenshot for the README (only when asked for)."""
    target = os.environ.get("TELEMEETING_CONSOLE_SCREENSHOT")
    return Path(target) if target else None
