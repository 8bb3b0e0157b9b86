"""How `telemeeting serve` runs uvicorn: uvloop and httptools unless `[server]` says otherwise."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from telemeeting.api.server import http_implementation, loop_factory, uvicorn_options
from telemeeting.config import ServerSettings, load_settings


def test_defaults_are_uvloop_and_httptools() -> None:
    settings = ServerSettings()
    assert loop_factory(settings) is uvloop.new_event_loop
    assert http_implementation(settings) == "httptools"
    options = uvicorn_options(settings)
    assert options["http"] == "httptools" and options["proxy_headers"] is False


def test_the_standard_loop_and_h11_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMEETING_SERVER_LOOP", "asyncio")
    monkeypatch.setenv("TELEMEETING_SERVER_HTTP", "h11")
    settings = load_settings().server
    assert loop_factory(settings) is None
    assert http_implementation(settings) == "h11"
    with asyncio.Runner(loop_factory=loop_factory(settings)) as runner:
        assert not isinstance(runner.get_loop(), uvloop.Loop)


def test_unknown_choices_are_refused() -> None:
    with pytest.raises(ValueError):
        ServerSettings(loop="trio")
    with pytest.raises(ValueError):
        ServerSettings(http="zttp")
