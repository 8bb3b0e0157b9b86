"""Failed logins are rate-limited per client address and user name (its own server: the limit
would lock the other tests' logins out of 127.0.0.1)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.console.conftest import OPERATOR, Console, off_loop, start_console

WINDOW_SECONDS = 3.0


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    running = off_loop(
        start_console,
        tmp_path_factory.mktemp("console-limit"),
        env={
            "TELEMEETING_CONSOLE_LOGIN_ATTEMPTS": "3",
            "TELEMEETING_CONSOLE_LOGIN_WINDOW_SECONDS": str(WINDOW_SECONDS),
        },
    )
    yield running
    running.server.stop()


def test_failed_logins_are_rate_limited(console: Console, page: Any) -> None:
    name, password = OPERATOR
    wrong = {"username": name, "password": "not-the-password"}
    for _ in range(3):
        answer = page.request.post("/login", form=wrong, max_redirects=0)
        assert answer.status == 401
        assert "Wrong user name or password." in answer.text()
    last_failure = time.monotonic()
    # Past the limit even the right password is refused, with a page that says why.
    blocked = page.request.post(
        "/login", form={"username": name, "password": password}, max_redirects=0
    )
    assert blocked.status == 429
    assert "Too many failed logins" in blocked.text()
    holder = page.request.post("/login", form={"sid": "x", "token": "y"}, max_redirects=0)
    assert holder.status == 429  # the address is limited, whatever it tries
    time.sleep(max(0.0, WINDOW_SECONDS - (time.monotonic() - last_failure)) + 0.2)
    allowed = page.request.post(
        "/login", form={"username": name, "password": password}, max_redirects=0
    )
    assert allowed.status == 303
