"""The console has its own listener: never on the API's ports, off with port 0, and with
--workers served by one API process."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from tests.servers import database_url, free_port, run_cli, start_server


def test_console_and_api_listen_apart(tmp_path: Path) -> None:
    port = free_port()
    server = start_server(
        database_url("sqlite", tmp_path), tmp_path, extra_args=("--console-port", str(port))
    )
    try:
        console = httpx.get(f"http://127.0.0.1:{port}/login", timeout=5)
        assert console.status_code == 200 and 'name="sid"' in console.text
        for api in (server.production_url, server.sandbox_url):
            for path in ("/", "/login", "/static/console.js"):
                answer = httpx.get(f"{api}{path}", timeout=5)
                assert 'name="sid"' not in answer.text and "EventSource" not in answer.text
        signed_path = "/201612/sid/x/call/TeleMeeting.wx"
        assert httpx.post(f"http://127.0.0.1:{port}{signed_path}", timeout=5).status_code != 200
        assert f"web console on http://127.0.0.1:{port}/" in server.log()
        # Whatever is asked, the answer is a page, never a bare error or a traceback.
        for method, path in (("PUT", "/login"), ("GET", "/no/such/page"), ("POST", "/logout")):
            answer = httpx.request(method, f"http://127.0.0.1:{port}{path}", timeout=5)
            assert answer.status_code in (401, 404, 405), (method, path, answer.status_code)
            assert answer.text.startswith("<!doctype html>"), (method, path)
            assert "Traceback" not in answer.text
    finally:
        server.stop()


def test_console_port_zero_means_no_console(tmp_path: Path) -> None:
    server = start_server(
        database_url("sqlite", tmp_path), tmp_path, extra_args=("--console-port", "0")
    )
    try:
        assert "web console" not in server.log()
    finally:
        server.stop()


def test_a_console_port_that_is_an_api_port_is_refused(tmp_path: Path) -> None:
    db = database_url("sqlite", tmp_path)
    port = str(free_port())
    result = run_cli(
        "serve", "--port", port, "--console-port", port, db=db, check=False, in_process=False
    )
    assert result.returncode == 2 and "is an API port" in result.stderr


def test_with_workers_one_process_serves_the_console(tmp_path: Path) -> None:
    port = free_port()
    server = start_server(
        database_url("sqlite", tmp_path),
        tmp_path,
        extra_args=("--console-port", str(port), "--workers", "2"),
    )
    try:
        for _ in range(5):
            answer = httpx.get(f"http://127.0.0.1:{port}/login", timeout=5)
            assert answer.status_code == 200
        assert server.log().count("web console on") == 1
    finally:
        server.stop()


def _hold(port: int) -> socket.socket | None:
    """Hold `port` on 127.0.0.1 (None: something else already does, which serves as well)."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    sock.listen(1)
    return sock


def test_a_taken_default_console_port_leaves_the_api_running(tmp_path: Path) -> None:
    held = _hold(8882)
    try:
        server = start_server(database_url("sqlite", tmp_path), tmp_path)
        try:
            assert "no web console: 127.0.0.1:8882 is taken" in server.log()
            assert server.process.poll() is None
        finally:
            server.stop()
    finally:
        if held is not None:
            held.close()


def test_a_taken_chosen_console_port_stops_the_start(tmp_path: Path) -> None:
    port = free_port()
    held = _hold(port)
    try:
        result = run_cli(
            "serve",
            "--console-port",
            str(port),
            "--port",
            str(free_port()),
            "--sandbox-port",
            str(free_port()),
            db=database_url("sqlite", tmp_path),
            check=False,
            in_process=False,
        )
        assert result.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in result.stderr
    finally:
        if held is not None:
            held.close()
