"""Running a node: the roles of one `telemeeting serve`, in one process or (with `--workers`)
in one process for the background roles and N API processes sharing the listening sockets.

Each process builds its own platform after the fork, so no database connection, event loop or
carrier crosses a process boundary. The parent restarts an API worker that dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from multiprocessing.process import BaseProcess

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from telemeeting.bootstrap import API, Platform, build_platform
from telemeeting.config import Settings
from telemeeting.runtime import settle_garbage_collector

log = structlog.get_logger(__name__)

#: A worker that dies within this long of its start is not restarted again (a crash loop).
_RESTART_AFTER_SECONDS = 5.0


async def serve_roles(
    settings: Settings,
    roles: frozenset[str],
    sockets: list[socket.socket],
    announce: Callable[[Platform, str], None] = lambda _platform, _what: None,
) -> None:
    """Start the roles; with the API role, serve HTTP on `sockets` until a signal."""
    from telemeeting.api.app import create_app
    from telemeeting.api.server import api_layers, http_config, http_implementation, serve_http

    platform = build_platform(settings, roles=roles)
    try:
        await platform.start()
    except BaseException:
        with contextlib.suppress(Exception):
            await platform.stop()
        raise
    settle_garbage_collector()
    try:
        if API in roles and sockets:
            admission = create_app(platform)
            api = api_layers(admission, settings.server, platform.trusted_proxies)
            app = _with_console(api, platform, sockets)
            app = _stopping_with(app, platform.stop)
            config = http_config(app, settings.server, platform.trusted_proxies, admission)
            announce(platform, f"{http_implementation(settings.server)} parser")
            await serve_http(config, sockets)
        else:
            announce(platform, "no API listeners")
            await _until_signalled()
    finally:
        await platform.stop()


def _with_console(api: ASGIApp, platform: Platform, sockets: list[socket.socket]) -> ASGIApp:
    """The web console (issue 13) on its own listener, when `serve` gave this process one."""
    from telemeeting.console.app import create_console_app, is_console_socket, on_listener

    port = platform.settings.console.port
    if not any(is_console_socket(sock, port) for sock in sockets):
        return api
    return on_listener(api, create_console_app(platform), port)


def _stopping_with(app: ASGIApp, stop: Callable[[], Awaitable[None]]) -> ASGIApp:
    """Stop the roles at uvicorn's lifespan shutdown: after a signal uvicorn re-raises it once
    it has shut down, so code after `serve()` would never run."""

    async def with_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await stop()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    return with_lifespan


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def run_with_workers(
    settings: Settings,
    roles: frozenset[str],
    sockets: list[socket.socket],
    workers: int,
    run: Callable[[Settings, frozenset[str], list[socket.socket]], None],
    first_worker_only: list[socket.socket] | None = None,
) -> None:
    """`workers` API processes on the shared sockets, the other roles in this process.

    `run(settings, roles, sockets)` runs one process's roles to the end (it owns its loop).
    `first_worker_only` (the console's listener) is served by worker 1 alone, and again by
    its replacement if it dies.
    """
    context = multiprocessing.get_context("fork")
    node = settings.server.node

    def spawn(index: int) -> BaseProcess:
        worker_settings = settings.model_copy(deep=True)
        worker_settings.server.node_id = f"{node}/api{index}"
        process = context.Process(
            target=_worker_main,
            args=(
                run,
                worker_settings,
                frozenset({API}),
                sockets + ((first_worker_only or []) if index == 1 else []),
            ),
            name=f"telemeeting-api-{index}",
            daemon=False,
        )
        process.start()
        return process

    children = {index: spawn(index) for index in range(1, workers + 1)}
    started = dict.fromkeys(children, time.monotonic())
    background = roles - {API}
    stopping = False

    def stop_children(*_: object) -> None:
        nonlocal stopping
        stopping = True
        for process in children.values():
            if process.is_alive() and process.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    try:
        if background:
            supervisor = _Supervisor(children, started, spawn, lambda: stopping)
            supervisor.start()
            run(settings, background, [])
        else:
            signal.signal(signal.SIGTERM, stop_children)
            signal.signal(signal.SIGINT, stop_children)
            _Supervisor(children, started, spawn, lambda: stopping).watch()
    finally:
        stop_children()
        for process in children.values():
            process.join(10)
            if process.is_alive():
                process.kill()


def _worker_main(
    run: Callable[[Settings, frozenset[str], list[socket.socket]], None],
    settings: Settings,
    roles: frozenset[str],
    sockets: list[socket.socket],
) -> None:
    run(settings, roles, sockets)


class _Supervisor:
    """Restarts API workers that die (unless they die right after starting)."""

    def __init__(
        self,
        children: dict[int, BaseProcess],
        started: dict[int, float],
        spawn: Callable[[int], BaseProcess],
        stopping: Callable[[], bool],
    ) -> None:
        self._children = children
        self._started = started
        self._spawn = spawn
        self._stopping = stopping

    def start(self) -> None:
        threading.Thread(target=self.watch, name="api-workers", daemon=True).start()

    def watch(self) -> None:
        while not self._stopping():
            for index, process in list(self._children.items()):
                process.join(0.2)
                if process.is_alive() or self._stopping():
                    continue
                if time.monotonic() - self._started[index] < _RESTART_AFTER_SECONDS:
                    log.error("api_worker.crash_loop", worker=index, exitcode=process.exitcode)
                    if all(not p.is_alive() for p in self._children.values()):
                        return
                    continue
                log.warning("api_worker.restarted", worker=index, exitcode=process.exitcode)
                self._children[index] = self._spawn(index)
                self._started[index] = time.monotonic()
