"""Process, server, database and reporting helpers shared by the HTTP benchmarks.

`bench/api_throughput.py` and `bench/callback_throughput.py` both use these: children in their
own session so Ctrl-C reaches only the benchmark, the real `telemeeting serve` started on a
scratch database (SQLite file, or a PostgreSQL database that is always dropped), signed API
requests, CPU read from /proc, and the same command line, JSON and closing lines. Everything
is 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
from rich.console import Console
from rich.table import Table

from telemeeting.wire.actions import CREATE_MEETING, TELEMEETING
from telemeeting.wire.auth import signed_headers
from telemeeting.wire.endpoints import CALL, VERSION, path
from telemeeting.wire.status import Status

HOST = "127.0.0.1"
ZONE = ZoneInfo("Asia/Shanghai")
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
CLI_TIMEOUT = 60.0
REQUEST_TIMEOUT = 30.0
DEFAULT_PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"

#: Progress and notes go to stderr, so that `--json` output on stdout stays clean.
log = Console(stderr=True)

T = TypeVar("T")


def free_port() -> int:
    """A port nobody listens on right now (the child binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def telemeeting_command() -> list[str]:
    """The installed `telemeeting` script of this interpreter (a real process, not a shim)."""
    script = Path(sys.executable).with_name("telemeeting")
    return [str(script)] if script.exists() else [sys.executable, "-m", "telemeeting"]


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (uvicorn shuts down gracefully), then SIGKILL if it does not exit in time."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(STOP_TIMEOUT)


@contextmanager
def spawned(
    args: list[str], log_path: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A child in its own session (Ctrl-C reaches only us, and we stop it), output to a file."""
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        stop_process(proc)


def wait_until_listening(
    proc: subprocess.Popen[bytes], port: int, log_path: Path, who: str = ""
) -> None:
    """Poll the port (bounded) so that a child that died says why instead of timing out.

    `who` names the child in the errors ("server exited …", "server not listening on …").
    """
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{who or 'process'} exited ({proc.returncode}):\n{tail(log_path)}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    listening = f"{who} not listening" if who else "nothing listening"
    raise RuntimeError(f"{listening} on {port} after {STARTUP_TIMEOUT:.0f}s")


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def cli_json(*args: str, db: str) -> Any:
    """Run the real CLI (as an operator would) and parse its `--json` output."""
    done = subprocess.run(
        [*telemeeting_command(), *args, "--db", db, "--json"],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"telemeeting {' '.join(args)} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def process_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process from /proc (Linux); None elsewhere or once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def system_cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine: shows whether others shared the cores."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


async def _pg_admin(dsn: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def fresh_pg_database(admin_dsn: str) -> Iterator[str]:
    """A new database next to the admin one, dropped afterwards; yields its asyncpg URL."""
    name = f"tm_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(admin_dsn, f'CREATE DATABASE "{name}"'))
    try:
        base = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        yield f"{base}/{name}"
    finally:
        asyncio.run(_pg_admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def target_database(target: str, pg_admin_dsn: str, workdir: Path) -> Iterator[str]:
    """The database URL of a target: "sqlite" a file in `workdir`, else a fresh PostgreSQL one."""
    if target == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        return
    with fresh_pg_database(pg_admin_dsn) as url:
        yield url


# ---- the server ---------------------------------------------------------------------------------


@contextmanager
def served(
    db_url: str, ring_seconds: float, log_path: Path, *, sandbox: bool, who: str = ""
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The real `telemeeting serve` on `db_url`, without rate limit and with the given simulated
    ring time; yields it and the base URL of the listener to drive (the sandbox or the production
    one). If the server has died by the end of the block, that is an error (with its log's end).
    """
    port, sandbox_port = free_port(), free_port()
    args = [
        *telemeeting_command(),
        "serve",
        "--db",
        db_url,
        "--host",
        HOST,
        "--port",
        str(port),
        "--sandbox-port",
        str(sandbox_port),
        "--no-demo",
    ]
    env = {
        "TELEMEETING_LIMITS_REQUESTS_PER_SECOND": "0",
        "TELEMEETING_SIM_RING_SECONDS": str(ring_seconds),
    }
    listener = sandbox_port if sandbox else port
    with spawned(args, log_path, env) as proc:
        wait_until_listening(proc, listener, log_path, who)
        yield proc, f"http://{HOST}:{listener}"
        if proc.poll() is not None:
            raise RuntimeError(f"server died during the run:\n{tail(log_path)}")


def api_url(base_url: str, sid: str, sign: str) -> str:
    """The signed URL of the meeting actions (TeleMeeting.wx), built from wire/endpoints.py."""
    return f"{base_url}{path(VERSION, sid, CALL, TELEMEETING)}?Sign={sign}"


async def post_signed(
    client: httpx.AsyncClient, base_url: str, sid: str, token: str, body: dict[str, Any]
) -> dict[str, Any]:
    """One API request, signed as the account `sid` would sign it; the decoded answer."""
    headers, sign = signed_headers(sid, token, datetime.now(UTC), ZONE)
    response = await client.post(
        api_url(base_url, sid, sign),
        content=json.dumps(body, ensure_ascii=False).encode(),
        headers=headers,
    )
    return dict(response.json())


async def create_meeting(
    client: httpx.AsyncClient, base_url: str, sid: str, token: str, body: dict[str, Any]
) -> dict[str, Any]:
    """A `createMeeting` request (`body` without the action); its answer, which must be "0"."""
    answer = await post_signed(client, base_url, sid, token, {"action": CREATE_MEETING, **body})
    if answer.get("statusCode") != Status.OK.code:
        raise RuntimeError(f"createMeeting failed: {answer}")
    return answer


async def fan_out(
    count: int, concurrency: int, job: Callable[[httpx.AsyncClient, int], Awaitable[None]]
) -> None:
    """`job(client, k)` for k in 0 … count-1, `concurrency` at a time on one shared client."""
    pending = iter(range(count))

    async def worker(client: httpx.AsyncClient) -> None:
        for k in pending:
            await job(client, k)

    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))


# ---- running and reporting ----------------------------------------------------------------------


def percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def load_average(rounded: bool = True) -> list[float]:
    """The 1, 5 and 15 minute load averages, to two decimals unless `rounded` is false."""
    return [round(x, 2) for x in os.getloadavg()] if rounded else list(os.getloadavg())


def machine(versions: dict[str, str] | None = None, rounded: bool = True) -> dict[str, Any]:
    """What the figures were measured on (and with which `versions` of libraries), with the load
    average before we add ours."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        **(versions or {}),
        "loadavg_before": load_average(rounded),
    }


def describe_machine(host: dict[str, Any]) -> str:
    """The closing line's start: CPUs and the load average before the run."""
    before = ", ".join(f"{x:.2f}" for x in host["loadavg_before"])
    return f"{host['cpus']} CPUs ({host['cpu_model']}); load average before: {before}"


@dataclass(frozen=True)
class BenchOptions:
    """What every benchmark's command line has; each one's `Options` adds its own fields."""

    targets: tuple[str, ...]
    pg_admin_dsn: str
    as_json: bool


def bench_parser(doc: str, targets: tuple[str, ...]) -> argparse.ArgumentParser:
    """The parser, described by the docstring's first paragraph, with `--targets` (all by
    default); add the benchmark's own options, then `add_closing_arguments`."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--targets", default=",".join(targets), help="comma-separated subset")
    return parser


def add_closing_arguments(parser: argparse.ArgumentParser) -> None:
    """`--pg-admin-dsn` and `--json`, the last options of every benchmark here."""
    parser.add_argument(
        "--pg-admin-dsn",
        default=os.environ.get("TELEMEETING_TEST_PG", DEFAULT_PG_ADMIN_DSN),
        help="an existing database to CREATE/DROP the scratch one from",
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON on stdout")


def common_options(
    parser: argparse.ArgumentParser, ns: argparse.Namespace, known: tuple[str, ...]
) -> dict[str, Any]:
    """The `BenchOptions` fields from the parsed command line (an unknown target is a usage
    error), as keywords for the benchmark's `Options`."""
    targets = tuple(t.strip() for t in ns.targets.split(",") if t.strip())
    if unknown := set(targets) - set(known):
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    return {"targets": targets, "pg_admin_dsn": ns.pg_admin_dsn, "as_json": ns.json}


def skip_reason(target: str, exc: Exception, whole: bool = False) -> str:
    """Log why a target was skipped (one broken target must not hide the others), the whole
    message if `whole` (a dead server's log tail too); return the reason, its first line."""
    reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    shown = exc if whole else reason
    log.print(f"[red]{target} skipped:[/red] {shown}", markup=True, highlight=False)
    return reason


def _interrupt(signum: int, _frame: object) -> None:
    """SIGTERM takes the same clean-up path as Ctrl-C."""
    raise KeyboardInterrupt


def run_interruptible(prefix: str, body: Callable[[Path], T]) -> T | None:
    """`body` on a scratch directory (removed afterwards), SIGTERM taking Ctrl-C's path; None
    once interrupted, after every started process has been stopped."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            return body(Path(tmp))
    except KeyboardInterrupt:
        log.print("interrupted; every started process has been stopped")
        return None


def print_json(host: dict[str, Any], opts: BenchOptions, results: list[Any]) -> None:
    """The `--json` document: the machine, the options (no DSN) and one object per result."""
    config = {k: v for k, v in asdict(opts).items() if k not in ("as_json", "pg_admin_dsn")}
    payload = {"machine": host, "config": config, "results": [asdict(r) for r in results]}
    print(json.dumps(payload, ensure_ascii=False, indent=2))


def print_table_out(table: Table, width: int) -> None:
    """On stdout: a terminal gets its own width, piped output a fixed one (so that the table is
    not squeezed into 80 columns)."""
    console = Console() if sys.stdout.isatty() else Console(width=width)
    console.print(table)


def fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else format(value, spec) + suffix
