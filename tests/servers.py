"""Real servers and databases for the integration and end-to-end tests.

Every test talks to 127.0.0.1 only. Under CI=true a missing PostgreSQL fails the run instead of
skipping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import pytest

from telemeeting.service import admin
from telemeeting.store.records import App
from telemeeting.store.unit_of_work import Database
from telemeeting.wire.auth import format_timestamp, make_authorization, make_sign

T = TypeVar("T")

CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_DSN = os.environ.get("TELEMEETING_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
ZONE = ZoneInfo("Asia/Shanghai")

#: Fast simulated carrier for tests (seconds).
FAST_SIM = {
    "TELEMEETING_SIM_RING_SECONDS": "0.3",
    "TELEMEETING_SIM_RING_TIMEOUT_SECONDS": "1.5",
    "TELEMEETING_LIMITS_REQUESTS_PER_SECOND": "1000",
    "TELEMEETING_LIMITS_BURST": "1000",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- databases -----------------------------------------------------------------------------


async def _pg_admin(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def create_pg_database() -> str:
    """A fresh PostgreSQL database; its async URL."""
    name = f"tm_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        if CI:
            pytest.fail(f"PostgreSQL at {PG_ADMIN_DSN} is required under CI: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with contextlib.suppress(Exception):  # cleanup is best effort
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def database_url(kind: str, tmp_dir: Path) -> str:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_dir / 'telemeeting.db'}"
    return create_pg_database()


def with_database(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work` against the database at `url` from the test process itself."""

    async def run() -> T:
        db = Database(url)
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


@contextlib.asynccontextmanager
async def migrated_database(url: str) -> AsyncIterator[Database]:
    """The database at `url` with every migration applied, disposed of on leaving: what each
    store test's `db` fixture opens."""
    database = Database(url)
    await database.migrate()
    try:
        yield database
    finally:
        await database.dispose()


async def new_app(db: Database, env: str = "production", **options: Any) -> App:
    """An app of a new account of its own (`options` as admin.create_app takes them), so that
    tests sharing a database never see each other's rows."""
    account = await admin.create_account(db)
    return await admin.create_app(db, account_sid=account.sid, env=env, **options)


# ---- the CLI and the server ----------------------------------------------------------------


def run_cli(
    *args: str,
    db: str,
    env: dict[str, str] | None = None,
    check: bool = True,
    in_process: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`telemeeting ARGS --db DB`: in this process through click's runner (the same command
    function, exit code and output, without a second of interpreter start-up), or as a real
    subprocess when `in_process` is False."""
    argv = [*args, "--db", db]
    if in_process:
        from typer.testing import CliRunner

        from telemeeting.cli import cli

        outcome = CliRunner().invoke(cli, argv, env=env, catch_exceptions=False)
        result = subprocess.CompletedProcess(
            argv, outcome.exit_code, outcome.stdout, outcome.stderr
        )
    else:
        result = subprocess.run(
            [sys.executable, "-m", "telemeeting", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **(env or {})},
        )
    if check and result.returncode != 0:
        raise AssertionError(f"telemeeting {' '.join(args)} failed: {result.stderr}")
    return result


def cli_json(*args: str, db: str) -> dict[str, Any]:
    return json.loads(run_cli(*args, "--json", db=db).stdout)


@dataclass
class Tenant:
    sid: str
    token: str
    sandbox_app: str
    production_app: str


@dataclass
class Server:
    db: str
    port: int
    sandbox_port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def production_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    def base(self, env: str) -> str:
        return self.sandbox_url if env == "sandbox" else self.production_url

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def new_tenant(self, balance: float | None = None) -> Tenant:
        """An account with a sandbox app and an online production app (in-process, fast)."""

        async def work(db: Database) -> Tenant:
            account = await admin.create_account(db, balance=balance)
            sandbox = await admin.create_app(db, account_sid=account.sid, env="sandbox")
            production = await admin.create_app(db, account_sid=account.sid, env="production")
            return Tenant(account.sid, account.auth_token, sandbox.appid, production.appid)

        return with_database(self.db, work)

    def make_app(self, account_sid: str, env: str, **options: Any) -> str:
        async def work(db: Database) -> str:
            app = await admin.create_app(db, account_sid=account_sid, env=env, **options)
            return app.appid

        return with_database(self.db, work)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def both_listeners_answer(server: Server) -> None:
    """Raises httpx.TransportError until the production and the sandbox listener both answer."""
    httpx.get(f"{server.production_url}/", timeout=1)
    httpx.get(f"{server.sandbox_url}/", timeout=1)


def start_server(
    db: str,
    tmp_dir: Path,
    env: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
    *,
    preexec_fn: Callable[[], None] | None = None,
    ready: Callable[[Server], None] = both_listeners_answer,
) -> Server:
    """`telemeeting serve` on free loopback ports, returned once `ready` stops raising
    httpx.TransportError (60 s at most). `preexec_fn` runs in the child before it starts (a
    lowered resource limit, say), so that every variant starts, waits and fails alike.

    A port found free can be taken before the server binds it (by another test's outgoing
    connection: free ports are ephemeral ones, and the suite runs on several workers): then the
    server is started again on new ports, twice at most."""
    for attempt in range(3):
        try:
            return _start_server_once(db, tmp_dir, env, extra_args, preexec_fn, ready)
        except PortTaken:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


class PortTaken(AssertionError):
    """The server could not listen: its port was taken after it had been found free."""


def _start_server_once(
    db: str,
    tmp_dir: Path,
    env: dict[str, str] | None,
    extra_args: tuple[str, ...],
    preexec_fn: Callable[[], None] | None,
    ready: Callable[[Server], None],
) -> Server:
    port, sandbox_port = free_port(), free_port()
    log_path = tmp_dir / f"server-{port}.log"
    full_env = {**os.environ, **FAST_SIM, **(env or {})}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "telemeeting",
                "serve",
                "--db",
                db,
                "--port",
                str(port),
                "--sandbox-port",
                str(sandbox_port),
                "--no-demo",
                *extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            preexec_fn=preexec_fn,
        )
    server = Server(db, port, sandbox_port, process, log_path, env or {})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log_text = server.log()
            if "cannot listen on" in log_text and "Address already in use" in log_text:
                raise PortTaken(f"server exited early:\n{log_text}")
            raise AssertionError(f"server exited early:\n{log_text}")
        try:
            ready(server)
            return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.stop()
    raise AssertionError(f"server did not start:\n{server.log()}")


# ---- signed requests -----------------------------------------------------------------------


@dataclass
class Reply:
    http_status: int
    body: dict[str, Any]
    headers: httpx.Headers
    raw: bytes = b""

    @property
    def code(self) -> str:
        return self.body.get("statusCode", "")

    @property
    def msg(self) -> str:
        return self.body.get("statusMsg", "")


def now_timestamp(offset: timedelta = timedelta()) -> str:
    return format_timestamp(datetime.now(UTC) + offset, ZONE)


class Api:
    """Signs and sends requests exactly as real ytx clients do, with knobs to break each part."""

    def __init__(self, server: Server, tenant: Tenant) -> None:
        self.server = server
        self.tenant = tenant

    def post(
        self,
        body: dict[str, Any] | str | bytes,
        *,
        env: str = "sandbox",
        func_url: str = "TeleMeeting.wx",
        func: str = "call",
        version: str = "201612",
        sid: str | None = None,
        token: str | None = None,
        timestamp: str | None = None,
        authorization: str | None = None,
        sign: str | None = None,
        lower_sign: bool = False,
        content_type: str | None = "application/json;charset=utf-8;",
        headers: dict[str, str] | None = None,
        path: str | None = None,
        method: str = "POST",
    ) -> Reply:
        sid = sid or self.tenant.sid
        token = token or self.tenant.token
        timestamp = timestamp or now_timestamp()
        if sign is None:
            sign = make_sign(sid, token, timestamp)
            sign = sign.lower() if lower_sign else sign
        all_headers = {"Accept": "application/json;"}
        if content_type is not None:
            all_headers["Content-Type"] = content_type
        auth = make_authorization(sid, timestamp) if authorization is None else authorization
        if auth:
            all_headers["Authorization"] = auth
        all_headers.update(headers or {})
        if isinstance(body, dict):
            body = {"appid": self.app(env), **body}
            content = json.dumps(body, ensure_ascii=False).encode()
        else:
            content = body.encode() if isinstance(body, str) else body
        default_path = f"/{version}/sid/{sid}/{func}/{func_url}?Sign={sign}"
        url = self.server.base(env) + (path or default_path)
        response = httpx.request(method, url, content=content, headers=all_headers, timeout=30)
        return Reply(response.status_code, response.json(), response.headers, response.content)

    def app(self, env: str) -> str:
        return self.tenant.sandbox_app if env == "sandbox" else self.tenant.production_app

    # ---- conveniences for meeting tests ----

    def create_meeting(self, env: str = "sandbox", **params: Any) -> str:
        reply = self.post({"action": "createMeeting", **params}, env=env)
        assert reply.code == "0", reply.body
        return reply.body["meid"]

    def invite(
        self,
        meid: str,
        *phones: str,
        env: str = "sandbox",
        headers: dict[str, str] | None = None,
        **params: Any,
    ) -> Reply:
        parties = [{"name": f"p{i}", "phone": phone} for i, phone in enumerate(phones)]
        return self.post(
            {"action": "inviteJoinMeeting", "confid": meid, "parties": parties, **params},
            env=env,
            headers=headers,
        )

    def query(self, meid: str, env: str = "sandbox") -> dict[str, Any]:
        reply = self.post(
            {"action": "queryMeeting", "confid": meid}, env=env, func_url="MeetingQuery.wx"
        )
        assert reply.code == "0", reply.body
        return reply.body["meeting"]

    def wait_for(
        self, meid: str, predicate: Any, env: str = "sandbox", timeout: float = 10.0
    ) -> dict[str, Any]:
        """Poll queryMeeting until `predicate(meeting)` holds; the last meeting otherwise."""
        deadline = time.monotonic() + timeout
        meeting = self.query(meid, env)
        while not predicate(meeting) and time.monotonic() < deadline:
            time.sleep(0.05)
            meeting = self.query(meid, env)
        assert predicate(meeting), meeting
        return meeting


def member(meeting: dict[str, Any], phone: str) -> dict[str, Any]:
    found = [m for m in meeting["members"] if m["phone"] == phone]
    assert found, f"{phone} not in {meeting['members']}"
    return found[-1]
