"""API throughput with wrk: the real server's actions side by side with bare endpoints, in one run.

Load comes from wrk (Debian package `wrk`), driven by bench/_wrk_signed.lua with one connection
per wrk thread, so that each answer's latency is known. The requests are built and signed here by
the SDK's request builder (`telemeeting.client._calls.Calls`: `telemeeting.wire.auth` signs, the
funcURLs come from `telemeeting.wire.actions`) and handed to Lua in files. That works because a
Sign depends only on the account and a timestamp, which the server accepts for 24 hours
(`[auth] timestamp_window_seconds`), far longer than a run. Only answers whose envelope says
statusCode "0" count as successes; every other code is counted by code.

Targets (`--targets`), each started as a subprocess and stopped again (on Ctrl-C too):

* `asgi`: a bare ASGI callable that checks the account, Authorization and Sign and answers the
  success envelope with a request id (bench/_baseline_app.py);
* `starlette`: the same as a Starlette route, the way the real app is built; the ratio column is
  taken against this row;
* `server`: the real `telemeeting serve --no-demo` with a temporary TOML config, on each of
  `--databases` (SQLite in a temporary directory; a fresh PostgreSQL database created next to
  `--pg-admin-dsn` and dropped afterwards), driven on its sandbox listener, with the simulated
  carrier answering every party after `--ring-seconds` and the per-account rate limit off.

The baselines run on the server's own stack (uvicorn options and event loop from
telemeeting.api.server) and bind their socket with `telemeeting.cli._listen`, as `telemeeting
serve` does, so socket options are the server's. A probe sends one request at a time on one
kept-alive connection to each target (and to the Starlette baseline bound by uvicorn itself):
per-request latency without queueing, where a socket-option problem such as a missing
TCP_NODELAY shows as ~40 ms.

For each database, after letting the server go idle between rounds:

* `queryMeeting` on 8 meetings of 5 answered members each (round robin);
* `createMeeting` with a name and no parties (the meetings it makes are used by the invites);
* `inviteJoinMeeting` of one new phone each, round robin over those meetings, at most
  `--invites-per-meeting` per meeting; the carrier rings and answers every one;
* filling one meeting of `--fill-members` (1000) members with one-phone invites, in blocks of 100
  sent over `--connections`: each block's rate, and its server CPU per invite including the
  carrier's reports; the first block against the last;
* overload rounds of invites at `--overload-connections` (256): answers "0" and the overload
  code -104, with their latencies. A refused invite is sent again later, after a pause of each
  of `--overload-pauses` (0 ms: at once; 250 ms: the SDK's first retry backoff).

Timed rounds last `--warmup` + `--duration` seconds; only answers completed in the measured
window count. Server CPU is utime + stime of the server's process tree from /proc over that
window; PostgreSQL's backends for the run's database are counted apart ("PG ms/req"), and the
machine column shows all CPU use (100 % = every core). `--rev` measures the server code of a
commit (exported with git archive) instead of the working tree.

    python bench/api_throughput.py                       # everything, about 5½ minutes
    python bench/api_throughput.py --json                # machine-readable results on stdout
    python bench/api_throughput.py --duration 3 --databases sqlite --actions queryMeeting
    python bench/api_throughput.py --rev HEAD            # committed code, not the working tree
"""

from __future__ import annotations

import io
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # bench/ is not a package: found through sys.path above
    HOST,
    ZONE,
    BenchOptions,
    add_closing_arguments,
    bench_parser,
    cli_json,
    common_options,
    describe_machine,
    fmt,
    free_port,
    load_average,
    log,
    machine,
    percentile,
    print_table_out,
    run_interruptible,
    skip_reason,
    spawned,
    system_cpu_ticks,
    tail,
    target_database,
    telemeeting_command,
    wait_until_listening,
)
from telemeeting.client import Client
from telemeeting.client._calls import Call, Calls, RetryPolicy
from telemeeting.wire import actions as wa
from telemeeting.wire.status import Status

HERE = Path(__file__).resolve().parent
LUA = HERE / "_wrk_signed.lua"
TARGETS = ("asgi", "starlette", "server")
DATABASES = ("sqlite", "postgres")
ACTIONS = (wa.QUERY_MEETING, wa.CREATE_MEETING, wa.INVITE)
OK = Status.OK.code
OVERLOAD = getattr(Status, "OVERLOADED", Status.RATE_LIMITED).code  # -104: admission control
WRK_TIMEOUT_S = 30  # wrk counts slower answers as timeouts (the script still records them)
ONCE_LIMIT_S = 600.0  # a send-each-once run (a fill block) is cut off after this long
QUERY_MEETINGS = 8
QUERY_MEMBERS = 5
FILL_BLOCK = 100
#: Members the overload rounds may add to a meeting, on top of --invites-per-meeting (≤ 50), so
#: that meetings stay under the default limit of 100; shared by the rounds.
OVERLOAD_ROOM = 90
PROVISION_SECONDS = 3.0  # createMeeting load that makes meetings when that round is not measured
#: Phones of different uses never meet: phone_for(BASE + k).
QUERY_BASE, INVITE_BASE, FILL_BASE, OVERLOAD_BASE = 0, 1_000_000, 2_000_000, 3_000_000
SETTLE_IDLE = 0.05  # the server counts as idle below 5 % of a core …
SETTLE_MAX_S = 30.0  # … and we wait for that at most this long
#: A bound on pre-built invites (files and build time) when no baseline rate is known.
FALLBACK_RATE = 3000.0


# ---- settings and results -----------------------------------------------------------------------


@dataclass(frozen=True)
class Options(BenchOptions):
    """The command line, parsed once and passed down."""

    actions: tuple[str, ...]
    databases: tuple[str, ...]
    duration: float
    warmup: float
    connections: int
    ring_seconds: float
    invites_per_meeting: int
    fill_members: int
    overload_connections: int
    overload_action: str
    overload_pauses: tuple[int, ...]
    probe_seconds: float
    api_workers: tuple[int, ...]
    rev: str
    save: str


@dataclass
class Round:
    """One timed round: a row of the main table (and of `--json`'s `rounds`)."""

    target: str
    action: str
    connections: int
    successes: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    rps: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    ratio: float | None = None
    server_cpu_ms_per_req: float | None = None
    server_cpu_pct: float | None = None
    postgres_cpu_ms_per_req: float | None = None
    wrk_cpu_pct: float | None = None
    machine_cpu_pct: float | None = None
    ran_out_of_work: bool = False
    skipped: str = ""


@dataclass
class Overload:
    """The overload round: answers "0" and -104 with their latencies."""

    target: str
    action: str
    connections: int
    pause_ms: int  # a connection's wait after a -104 before its next request
    ok: int = 0
    ok_rps: float = 0.0
    ok_p50_ms: float | None = None
    ok_p99_ms: float | None = None
    overload: int = 0
    overload_p50_ms: float | None = None
    overload_p99_ms: float | None = None
    other: dict[str, int] = field(default_factory=dict)
    max_ms: float | None = None
    server_cpu_pct: float | None = None
    wrk_cpu_pct: float | None = None
    machine_cpu_pct: float | None = None
    ran_out_of_work: bool = False
    skipped: str = ""


@dataclass
class Fill:
    """Filling one meeting: per block of 100 invites, its rate and its server CPU per invite."""

    target: str
    members: int
    connections: int
    block_rps: list[float] = field(default_factory=list)
    block_cpu_ms: list[float | None] = field(default_factory=list)
    block_errors: list[dict[str, int]] = field(default_factory=list)
    invited: int = 0
    seconds: float = 0.0
    first_rps: float | None = None
    last_rps: float | None = None
    cost_ratio: float | None = None  # time of the last block / time of the first
    cpu_ratio: float | None = None
    skipped: str = ""


@dataclass
class Probe:
    """One keep-alive connection, one request at a time: per-request latency without queueing."""

    target: str
    requests: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    skipped: str = ""


@dataclass
class Results:
    rounds: list[Round] = field(default_factory=list)
    overloads: list[Overload] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)


# ---- processes and CPU --------------------------------------------------------------------------


def cpu_seconds(root: int, database: str = "") -> tuple[float | None, dict[int, float]]:
    """utime + stime (Linux /proc) of `root` and all its descendants, None once `root` is gone;
    and of each PostgreSQL backend serving `database` (their command line names it), by pid."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    in_database: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            seconds = (int(fields[11]) + int(fields[12])) / tick
            if database and stat[stat.index("(") + 1 : stat.rindex(")")] == "postgres":
                command = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ")
                if f" {database} ".encode() in command:
                    in_database[int(entry.name)] = seconds
        except (OSError, IndexError, ValueError):
            continue
        pid = int(entry.name)
        parent[pid] = int(fields[1])
        cpu[pid] = seconds
    if root not in cpu:
        return None, in_database
    total = 0.0
    for pid, seconds in cpu.items():
        p, hops = pid, 0
        while p > 1 and p != root and hops < 64:
            p, hops = parent.get(p, 0), hops + 1
        if p == root:
            total += seconds
    return total, in_database


def tree_cpu_seconds(root: int) -> float | None:
    return cpu_seconds(root)[0]


def settle(pid: int) -> None:
    """Wait (bounded) until the server is idle: the carrier's reports of the last round done."""
    deadline = time.monotonic() + SETTLE_MAX_S
    before = tree_cpu_seconds(pid)
    while before is not None and time.monotonic() < deadline:
        time.sleep(0.5)
        now = tree_cpu_seconds(pid)
        if now is None or now - before < SETTLE_IDLE * 0.5:
            return
        before = now


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Sample:
    server: float | None
    database: dict[int, float]  # by backend pid
    machine: tuple[int, int] | None

    @classmethod
    def take(cls, pid: int | None, database: str = "") -> Sample:
        server, in_database = cpu_seconds(pid, database) if pid else (None, {})
        return cls(server, in_database, system_cpu_ticks())


def cpu_between(a: Sample, b: Sample) -> tuple[float | None, float, float | None]:
    """Server and database CPU seconds, and machine busy % (100 % = every core), `a` to `b`.
    A backend that started in between counts whole; one that exited in between is lost (the
    pool closes connections beyond its size), so the database figure is a lower bound."""
    server = b.server - a.server if a.server is not None and b.server is not None else None
    busy = None
    if a.machine and b.machine and b.machine[1] > a.machine[1]:
        busy = 100 * (b.machine[0] - a.machine[0]) / (b.machine[1] - a.machine[1])
    database = 0.0
    for pid, cpu in b.database.items():
        before = a.database.get(pid, 0.0)
        database += cpu - before if cpu >= before else cpu  # less: a new process, pid reused
    return server, database, busy


# ---- requests -----------------------------------------------------------------------------------


def phone_for(index: int) -> str:
    """A distinct mobile number whose last digit (1) avoids every special sim suffix (spec §8)."""
    return f"139{index % 10**7:07d}1"


def raw_request(calls: Calls, call: Call) -> bytes:
    """One complete HTTP/1.1 request, signed now by the SDK's request builder."""
    url, headers, body = calls.request(call)
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    head = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head += [f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(head).encode("latin-1") + body


def make_calls(base_url: str, sid: str, token: str, appid: str) -> Calls:
    return Calls(sid, token, appid, base_url, ZONE, RetryPolicy(retries=0))


def deal(requests: Sequence[bytes], threads: int) -> list[list[bytes]]:
    """Request k to thread k mod `threads` (so every thread gets meetings in turn)."""
    return [list(requests[i::threads]) for i in range(threads)]


def query_slices(calls: Calls, meids: list[str], threads: int) -> list[list[bytes]]:
    """queryMeeting over `meids`, each thread starting at a different meeting (replayed)."""
    one_each = [raw_request(calls, calls.query_meeting(meid)) for meid in meids]
    return [one_each[i % len(one_each) :] + one_each[: i % len(one_each)] for i in range(threads)]


def create_slices(calls: Calls, threads: int) -> list[list[bytes]]:
    """createMeeting with a name and no parties (replayed: each one makes a new meeting)."""
    call = calls.create_meeting(
        meeting_name="bench",
        creator=None,
        parties=None,
        confid=None,
        srcclid=None,
        dstclid=None,
        shownumber=None,
        book_time=None,
        max_members=None,
        custom_parm=None,
        idempotency_key=None,
    )
    return [[raw_request(calls, call)] for _ in range(threads)]


def invite_requests(calls: Calls, meids: list[str], count: int, phone_base: int) -> list[bytes]:
    """`count` one-phone invites, round robin over `meids`, every phone new."""
    return [
        raw_request(
            calls,
            calls.invite(meids[k % len(meids)], [phone_for(phone_base + k)], None, None),
        )
        for k in range(count)
    ]


# ---- wrk ----------------------------------------------------------------------------------------


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        sys.exit(
            "wrk not found. Install it with:\n"
            "    sudo apt-get install wrk        # Debian, Ubuntu\n"
            "    brew install wrk                # macOS\n"
            "or build it from https://github.com/wg/wrk (it needs LuaJIT, which it bundles)."
        )
    return path


def wrk_version() -> str:
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).splitlines()[0].strip() if done.stdout else ""


@dataclass
class Answer:
    code: str
    done: float  # time.monotonic() seconds
    latency: float
    meid: str


@dataclass
class WrkRun:
    answers: list[Answer]
    sent: int
    ran_out_threads: int
    socket_errors: dict[str, int]
    started: float
    window: tuple[float, float]
    server_cpu_s: float | None
    database_cpu_s: float
    machine_busy_pct: float | None
    wrk_cpu_s: float
    wall_s: float

    def measured(self) -> list[Answer]:
        lo, hi = self.window
        return [a for a in self.answers if lo <= a.done <= hi]


def _wait_for(path: Path, proc: subprocess.Popen[bytes], log_path: Path, limit: float) -> None:
    deadline = time.monotonic() + limit
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"wrk exited ({proc.returncode}):\n{tail(log_path)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"wrk did not start within {limit:.0f}s:\n{tail(log_path)}")
        time.sleep(0.005)


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def _end_wrk(proc: subprocess.Popen[bytes], limit: float = 30.0) -> None:
    """SIGINT ends wrk's sleep; it then joins its threads and runs done() (repeated, in case the
    first one came before wrk installed its handler)."""
    deadline = time.monotonic() + limit
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError("wrk did not stop")
        proc.send_signal(signal.SIGINT)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(0.5)


def _parse_out(path: Path) -> tuple[list[Answer], int, int, dict[str, int]]:
    answers: list[Answer] = []
    sent = ran_out = 0
    errors: dict[str, int] = {}
    for line in path.read_text().splitlines():
        cells = line.split("\t")
        if cells[0] == "#sent":
            sent = int(cells[1])
        elif cells[0] == "#ran_out":
            ran_out = int(cells[1])
        elif cells[0] == "#errors":
            names = ("connect", "read", "write", "http_status", f"slower_than_{WRK_TIMEOUT_S}s")
            errors = {n: int(v) for n, v in zip(names, cells[1:], strict=True) if int(v)}
        elif len(cells) == 4:
            answers.append(Answer(cells[0], float(cells[1]), float(cells[2]), cells[3]))
    return answers, sent, ran_out, errors


def run_wrk(
    url: str,
    slices: list[list[bytes]],
    workdir: Path,
    name: str,
    *,
    server_pid: int | None,
    database: str = "",
    replay: bool = True,
    pause_ms: int = 0,
    warmup: float = 0.0,
    duration: float | None = None,
) -> WrkRun:
    """wrk with one connection per slice. `replay`: each thread sends its requests round and
    round; otherwise each request once (again after an overload answer, -104, which did
    nothing), and a thread that has sent all its requests stops. After a -104 a connection
    waits `pause_ms` before its next request.
    Timed (`duration` given): the window is [start + warmup, start + warmup + duration], then
    wrk is ended. Otherwise wrk is ended when every thread is through (a request per thread, at
    least, must not be replayed then); the window is the whole run."""
    threads = len(slices)
    prefix = workdir / name
    for i, requests in enumerate(slices, start=1):
        with open(f"{prefix}-{i}.req", "wb") as out:
            for request in requests:
                out.write(b"%d\n" % len(request) + request)
    timed = duration is not None
    limit = math.ceil(warmup + duration) + 5 if timed else math.ceil(ONCE_LIMIT_S) + 60
    args = ["wrk", "-t", str(threads), "-c", str(threads), "-d", f"{limit}s"]
    args += ["--timeout", f"{WRK_TIMEOUT_S}s", "-s", str(LUA), url, "--"]
    args += [str(prefix), "cycle" if replay else "once", str(threads), OVERLOAD, str(pause_ms)]
    log_path = workdir / f"{name}.wrk.log"
    cpu_before = children_cpu_seconds()
    launched = time.monotonic()
    with spawned(args, log_path) as proc:
        _wait_for(Path(f"{prefix}.started"), proc, log_path, 60)
        started = float(Path(f"{prefix}.started").read_text())
        if timed:
            assert duration is not None
            window = (started + warmup, started + warmup + duration)
            _sleep_until(window[0])
            a = Sample.take(server_pid, database)
            _sleep_until(window[1])
            b = Sample.take(server_pid, database)
        else:
            a = Sample.take(server_pid, database)
            finished = [Path(f"{prefix}-{i}.finished") for i in range(1, threads + 1)]
            deadline = time.monotonic() + ONCE_LIMIT_S
            while not all(p.exists() for p in finished) and proc.poll() is None:
                if time.monotonic() > deadline:  # answers still missing: report what came
                    log.print(f"[red]{name}: unanswered requests after {ONCE_LIMIT_S:g}s[/red]")
                    break
                time.sleep(0.01)
            b = Sample.take(server_pid, database)
            window = (started, time.monotonic())
        _end_wrk(proc)
        if proc.returncode != 0:
            raise RuntimeError(f"wrk failed ({proc.returncode}):\n{tail(log_path)}")
    wall = time.monotonic() - launched
    wrk_cpu = children_cpu_seconds() - cpu_before
    out_path = Path(f"{prefix}.out")
    if not out_path.exists():
        raise RuntimeError(f"wrk wrote no results:\n{tail(log_path)}")
    answers, sent, ran_out, errors = _parse_out(out_path)
    for i in range(1, threads + 1):
        Path(f"{prefix}-{i}.req").unlink(missing_ok=True)
    server_cpu, database_cpu, busy = cpu_between(a, b)
    return WrkRun(
        answers,
        sent,
        ran_out,
        errors,
        started,
        window,
        server_cpu,
        database_cpu,
        busy,
        wrk_cpu,
        wall,
    )


# ---- turning runs into figures -----------------------------------------------------------------


def ms_percentiles(latencies: list[float]) -> tuple[float | None, float | None]:
    if not latencies:
        return None, None
    ordered = sorted(latencies)
    return round(1000 * percentile(ordered, 50), 2), round(1000 * percentile(ordered, 99), 2)


def timed_round(run: WrkRun, target: str, action: str, connections: int, replay: bool) -> Round:
    measured = run.measured()
    codes = Counter(a.code for a in measured)
    successes = codes.pop(OK, 0)
    seconds = run.window[1] - run.window[0]
    errors = dict(codes)
    errors.update(run.socket_errors)
    result = Round(target, action, connections, successes, errors)
    result.rps = round(successes / seconds, 1)
    result.p50_ms, result.p99_ms = ms_percentiles([a.latency for a in measured if a.code == OK])
    if run.server_cpu_s is not None:
        result.server_cpu_pct = round(100 * run.server_cpu_s / seconds, 1)
        if successes:
            result.server_cpu_ms_per_req = round(1000 * run.server_cpu_s / successes, 2)
    if target == "postgres" and successes:
        result.postgres_cpu_ms_per_req = round(1000 * run.database_cpu_s / successes, 2)
    result.wrk_cpu_pct = round(100 * run.wrk_cpu_s / run.wall_s, 1)
    if run.machine_busy_pct is not None:
        result.machine_cpu_pct = round(run.machine_busy_pct, 1)
    # a thread that used up its invites stopped early: the rate then undercounts
    result.ran_out_of_work = not replay and run.ran_out_threads > 0
    return result


# ---- the baselines ------------------------------------------------------------------------------


@contextmanager
def baseline_server(app: str, bind: str, workdir: Path) -> Iterator[tuple[int, str, str, str]]:
    """bench/_baseline_app.py; yields its pid, base URL, and the SID and token it accepts."""
    port = free_port()
    sid, token = os.urandom(16).hex(), os.urandom(16).hex()
    args = [sys.executable, str(HERE / "_baseline_app.py"), "--app", app, "--port", str(port)]
    args += ["--bind", bind]
    env = {"BENCH_BASELINE_SID": sid, "BENCH_BASELINE_TOKEN": token}
    log_path = workdir / f"baseline-{app}-{bind}.log"
    with spawned(args, log_path, env) as proc:
        wait_until_listening(proc, port, log_path, who=f"{app} baseline")
        yield proc.pid, f"http://{HOST}:{port}", sid, token
        if proc.poll() is not None:
            raise RuntimeError(f"{app} baseline died:\n{tail(log_path)}")


def probe(url: str, request: list[bytes], workdir: Path, label: str, seconds: float) -> Probe:
    """One connection for `seconds`: the latency of one request on a kept-alive connection."""
    name = "probe-" + "".join(c if c.isalnum() else "-" for c in label)
    run = run_wrk(url, [request], workdir, name, server_pid=None, warmup=0.2, duration=seconds)
    measured = run.measured()
    result = Probe(label, requests=len(measured))
    result.p50_ms, result.p99_ms = ms_percentiles([a.latency for a in measured if a.code == OK])
    return result


def bench_baseline(app: str, opts: Options, workdir: Path, results: Results) -> None:
    label = app
    try:
        with baseline_server(app, "serve", workdir) as (pid, url, sid, token):
            calls = make_calls(url, sid, token, "baseline-app")
            slices = query_slices(calls, ["1"], opts.connections)
            if opts.probe_seconds > 0:
                results.probes.append(probe(url, slices[0], workdir, label, opts.probe_seconds))
            log.print(
                f"{label}: {opts.warmup:g}+{opts.duration:g}s, {opts.connections} connections"
            )
            run = run_wrk(
                url,
                slices,
                workdir,
                label,
                server_pid=pid,
                warmup=opts.warmup,
                duration=opts.duration,
            )
            results.rounds.append(timed_round(run, label, "-", opts.connections, replay=True))
        if app == "starlette" and opts.probe_seconds > 0:
            # The same app with uvicorn binding host and port itself: shows what socket options
            # the server's own way of listening costs on a kept-alive connection.
            with baseline_server(app, "uvicorn", workdir) as (_pid, url, sid, token):
                calls = make_calls(url, sid, token, "baseline-app")
                request = query_slices(calls, ["1"], 1)[0]
                other = "starlette, uvicorn binds host:port"
                results.probes.append(probe(url, request, workdir, other, opts.probe_seconds))
    except Exception as exc:  # one broken target must not hide the others
        results.rounds.append(Round(label, "-", opts.connections, skipped=skip_reason(label, exc)))


# ---- the real server ----------------------------------------------------------------------------


def write_config(path: Path, db_url: str, port: int, sandbox_port: int, ring: float) -> None:
    path.write_text(
        "[server]\n"
        f'host = "{HOST}"\nport = {port}\nsandbox_port = {sandbox_port}\n'
        f'[database]\nurl = "{db_url}"\n'
        "[limits]\nrequests_per_second = 0\n"
        f"[sim]\nring_seconds = {ring}\n"
        "[console]\nport = 0\n"  # no web console: its fixed port would clash between servers
    )


@contextmanager
def real_server(
    name: str, db_url: str, opts: Options, workdir: Path, workers: int = 1
) -> Iterator[tuple[int, str]]:
    """`telemeeting serve --config <temporary TOML> --no-demo [--workers N]`; yields its pid
    (CPU is counted over its descendants too) and sandbox URL.
    TELEMEETING_* variables in the environment still apply (they override the file)."""
    port, sandbox_port = free_port(), free_port()
    config = workdir / f"{name}.toml"
    write_config(config, db_url, port, sandbox_port, opts.ring_seconds)
    log_path = workdir / f"{name}.log"
    args = [*telemeeting_command(), "serve", "--config", str(config), "--no-demo"]
    if workers > 1:
        args += ["--workers", str(workers)]
    with spawned(args, log_path) as proc:
        wait_until_listening(proc, sandbox_port, log_path, who="server")
        yield proc.pid, f"http://{HOST}:{sandbox_port}"
        if proc.poll() is not None:
            raise RuntimeError(f"server died during the run:\n{tail(log_path)}")


@dataclass
class Session:
    """One database's server and the account that signs its requests."""

    name: str
    pid: int
    url: str
    calls: Calls
    client: Client
    opts: Options
    workdir: Path
    results: Results
    database: str = ""  # PostgreSQL's database name (its backends' CPU is counted)
    query_meids: list[str] = field(default_factory=list)
    meetings: list[str] = field(default_factory=list)  # empty meetings for invites
    #: How many invites to build: not more than the bare Starlette rate (no answer comes
    #: faster), nor 20× the createMeeting rate.
    invite_rate_hint: float = FALLBACK_RATE
    overload_rounds: int = 0

    def wrk(self, slices: list[list[bytes]], name: str, replay: bool, pause_ms: int = 0) -> WrkRun:
        settle(self.pid)
        return run_wrk(
            self.url,
            slices,
            self.workdir,
            name,
            server_pid=self.pid,
            database=self.database,
            replay=replay,
            pause_ms=pause_ms,
            warmup=self.opts.warmup,
            duration=self.opts.duration,
        )

    def prepare_queries(self) -> None:
        for m in range(QUERY_MEETINGS):
            phones = [phone_for(QUERY_BASE + m * QUERY_MEMBERS + j) for j in range(QUERY_MEMBERS)]
            created = self.client.create_meeting("bench-query", parties=phones)
            self.query_meids.append(created.meid)
        time.sleep(self.opts.ring_seconds + 0.5)  # every member answered
        settle(self.pid)

    def round_name(self, action: str) -> str:
        return f"{self.name}-{action}"

    def query(self) -> None:
        slices = query_slices(self.calls, self.query_meids, self.opts.connections)
        self.timed(wa.QUERY_MEETING, slices, replay=True)

    def create(self, measured: bool = True) -> None:
        slices = create_slices(self.calls, self.opts.connections)
        if measured:
            run = self.timed(wa.CREATE_MEETING, slices, replay=True)
        else:
            log.print(f"{self.name}: creating meetings for the invites ({PROVISION_SECONDS:g}s)")
            run = run_wrk(
                self.url,
                slices,
                self.workdir,
                self.round_name("provision"),
                server_pid=self.pid,
                database=self.database,
                warmup=0.0,
                duration=PROVISION_SECONDS,
            )
        self.meetings = [a.meid for a in run.answers if a.code == OK and a.meid]
        if measured and self.results.rounds[-1].rps:  # invites will not be 20× faster
            self.invite_rate_hint = min(self.invite_rate_hint, 20 * self.results.rounds[-1].rps)

    def invite(self) -> None:
        if not self.meetings:
            self.create(measured=False)
        budget = min(
            len(self.meetings) * self.opts.invites_per_meeting,
            math.ceil(self.invite_rate_hint * (self.opts.warmup + self.opts.duration + 1)),
        )
        requests = invite_requests(self.calls, self.meetings, budget, INVITE_BASE)
        self.timed(wa.INVITE, deal(requests, self.opts.connections), replay=False)

    def timed(self, action: str, slices: list[list[bytes]], replay: bool) -> WrkRun:
        log.print(
            f"{self.name} {action}: {self.opts.warmup:g}+{self.opts.duration:g}s at "
            f"{len(slices)} connections"
        )
        run = self.wrk(slices, self.round_name(action), replay)
        self.results.rounds.append(timed_round(run, self.name, action, len(slices), replay))
        return run

    def fill(self) -> None:
        opts = self.opts
        result = Fill(self.name, opts.fill_members, min(opts.connections, FILL_BLOCK))
        self.results.fills.append(result)
        created = self.client.create_meeting("bench-fill", max_members=opts.fill_members)
        log.print(f"{self.name}: filling a meeting of {opts.fill_members} members")
        requests = invite_requests(self.calls, [created.meid], opts.fill_members, FILL_BASE)
        blocks = [requests[k : k + FILL_BLOCK] for k in range(0, len(requests), FILL_BLOCK)]
        for b, block in enumerate(blocks):
            settle(self.pid)
            before = tree_cpu_seconds(self.pid)
            run = run_wrk(
                self.url,
                deal(block, min(result.connections, len(block))),
                self.workdir,
                f"{self.name}-fill-{b}",
                server_pid=self.pid,
                replay=False,
            )
            settle(self.pid)  # the block's cost includes the carrier's reports of its legs
            after = tree_cpu_seconds(self.pid)
            ok = [a for a in run.answers if a.code == OK]
            first_sent = min((a.done - a.latency for a in run.answers), default=run.started)
            last_done = max((a.done for a in run.answers), default=first_sent)
            seconds = max(1e-6, last_done - first_sent)
            result.invited += len(ok)
            result.seconds += seconds
            result.block_rps.append(round(len(ok) / seconds, 1))
            cpu = None
            if before is not None and after is not None and ok:
                cpu = round(1000 * (after - before) / len(ok), 2)
            result.block_cpu_ms.append(cpu)
            result.block_errors.append(dict(Counter(a.code for a in run.answers if a.code != OK)))
        result.seconds = round(result.seconds, 2)
        if len(result.block_rps) >= 2 and result.block_rps[0] and result.block_rps[-1]:
            result.first_rps, result.last_rps = result.block_rps[0], result.block_rps[-1]
            result.cost_ratio = round(result.first_rps / result.last_rps, 2)
            first_cpu, last_cpu = result.block_cpu_ms[0], result.block_cpu_ms[-1]
            if first_cpu and last_cpu:
                result.cpu_ratio = round(last_cpu / first_cpu, 2)

    def overload(self, pause_ms: int) -> None:
        opts = self.opts
        action, conns = opts.overload_action, opts.overload_connections
        if action == wa.QUERY_MEETING:
            slices, replay = query_slices(self.calls, self.query_meids, conns), True
        elif action == wa.CREATE_MEETING:
            slices, replay = create_slices(self.calls, conns), True
        else:
            if not self.meetings:
                self.create(measured=False)
            # an invite refused with -104 is sent again later: only accepted ones use up work
            budget = min(
                len(self.meetings)
                * ((OVERLOAD_ROOM - opts.invites_per_meeting) // len(opts.overload_pauses)),
                math.ceil(self.invite_rate_hint * (opts.warmup + opts.duration + 1)),
            )
            base = OVERLOAD_BASE + 1_000_000 * self.overload_rounds  # new phones each round
            self.overload_rounds += 1
            requests = invite_requests(self.calls, self.meetings, budget, base)
            slices, replay = deal(requests, conns), False
        log.print(
            f"{self.name} overload: {action}, {opts.warmup:g}+{opts.duration:g}s at {conns} "
            f"connections, {pause_ms} ms pause after -104"
        )
        run = self.wrk(slices, self.round_name(f"overload-{pause_ms}"), replay, pause_ms)
        measured = run.measured()
        seconds = run.window[1] - run.window[0]
        result = Overload(self.name, action, conns, pause_ms)
        ok = [a.latency for a in measured if a.code == OK]
        over = [a.latency for a in measured if a.code == OVERLOAD]
        result.ok, result.overload = len(ok), len(over)
        result.ok_rps = round(len(ok) / seconds, 1)
        result.ok_p50_ms, result.ok_p99_ms = ms_percentiles(ok)
        result.overload_p50_ms, result.overload_p99_ms = ms_percentiles(over)
        result.other = dict(Counter(a.code for a in measured if a.code not in (OK, OVERLOAD)))
        result.other.update(run.socket_errors)
        if measured:
            result.max_ms = round(1000 * max(a.latency for a in measured), 1)
        if run.server_cpu_s is not None:
            result.server_cpu_pct = round(100 * run.server_cpu_s / seconds, 1)
        result.wrk_cpu_pct = round(100 * run.wrk_cpu_s / run.wall_s, 1)
        if run.machine_busy_pct is not None:
            result.machine_cpu_pct = round(run.machine_busy_pct, 1)
        result.ran_out_of_work = not replay and run.ran_out_threads > 0
        self.results.overloads.append(result)


def bench_database(
    name: str, opts: Options, workdir: Path, results: Results, workers: int = 1
) -> None:
    """Every round on one database; with `workers` > 1 only queries and invites, on a server
    with that many API processes (its target is named e.g. `postgres×2`)."""
    base_name, name = name, (name if workers == 1 else f"{name}×{workers}")
    with target_database(base_name, opts.pg_admin_dsn, workdir) as db_url:
        account = cli_json("account", "create", "--name", "bench", db=db_url)
        app = cli_json("app", "create", "--account", account["sid"], "--env", "sandbox", db=db_url)
        sid, token, appid = account["sid"], account["auth_token"], app["appid"]
        with real_server(name, db_url, opts, workdir, workers) as (pid, url):
            client = Client(sid, token, appid, url, retries=0, timeout=60.0)
            session = Session(
                name, pid, url, make_calls(url, sid, token, appid), client, opts, workdir, results
            )
            if db_url.startswith("postgresql"):
                session.database = db_url.rsplit("/", 1)[1]
            bare = [r.rps for r in results.rounds if r.target == "starlette" and r.rps]
            if bare:  # how many invites to build: the server will not beat its bare framework
                session.invite_rate_hint = bare[0]
            try:
                session.prepare_queries()
                if opts.probe_seconds > 0:
                    request = query_slices(session.calls, session.query_meids, 1)[0]
                    label = f"{name} queryMeeting"
                    results.probes.append(probe(url, request, workdir, label, opts.probe_seconds))
                steps: list[tuple[str, Callable[[], None]]] = [
                    (wa.QUERY_MEETING, session.query),
                    (wa.CREATE_MEETING, session.create),
                    (wa.INVITE, session.invite),
                ]
                for action, step in steps:
                    if action in opts.actions and (workers == 1 or action != wa.CREATE_MEETING):
                        step()
                if opts.fill_members > 0 and workers == 1:
                    session.fill()
                if opts.overload_connections > 0 and workers == 1:
                    for pause_ms in opts.overload_pauses:
                        session.overload(pause_ms)
            finally:
                client.close()


def use_source(rev: str, workdir: Path) -> dict[str, str]:
    """Which server code runs. With `rev`, src/ of that commit is exported (git archive) into
    `workdir` and put first on every child's PYTHONPATH (servers, CLI, baselines), so that other
    people's uncommitted edits in the working tree are not what gets measured."""
    top = subprocess.run(
        ["git", "-C", str(HERE), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not rev:
        dirty = subprocess.run(
            ["git", "-C", top or str(HERE), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        head = git_commit("HEAD", top)
        return {"source": "working tree", "commit": head, "src_modified": str(bool(dirty))}
    commit = git_commit(rev, top)
    if not commit:
        raise SystemExit(f"unknown revision {rev!r}")
    archive = subprocess.run(
        ["git", "-C", top, "archive", "--format=tar", commit, "src"],
        capture_output=True,
        check=True,
    ).stdout
    dest = workdir / f"src-{commit[:12]}"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    source = str(dest / "src")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (source, os.environ.get("PYTHONPATH", "")) if p
    )
    return {"source": f"git archive {rev}", "commit": commit, "src_modified": "False"}


def git_commit(rev: str, top: str) -> str:
    done = subprocess.run(
        ["git", "-C", top or str(HERE), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


def run_all(opts: Options, workdir: Path, host: dict[str, Any]) -> Results:
    host.update(use_source(opts.rev, workdir))
    log.print(
        f"server code: {host['source']} at {host['commit'][:12]}"
        + (" (src/ has uncommitted changes)" if host["src_modified"] == "True" else "")
    )
    results = Results()
    for app in ("asgi", "starlette"):
        if app in opts.targets:
            bench_baseline(app, opts, workdir, results)
    if "server" in opts.targets:
        for name in opts.databases:
            for workers in opts.api_workers:
                try:
                    bench_database(name, opts, workdir, results, workers)
                except Exception as exc:  # one broken database must not hide the other
                    reason = skip_reason(name, exc, whole=True)
                    results.rounds.append(Round(name, "-", opts.connections, skipped=reason))
    add_ratios(results.rounds)
    return results


def add_ratios(rounds: list[Round]) -> None:
    base = next((r for r in rounds if r.target == "starlette" and r.rps), None)
    if base is None:
        return
    for r in rounds:
        if not r.skipped:
            r.ratio = round(r.rps / base.rps, 3)


# ---- reporting ----------------------------------------------------------------------------------


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{code}×{n}" for code, n in sorted(errors.items())) or "0"


def print_tables(results: Results, opts: Options) -> None:
    table = Table(
        title=(
            f"signed requests via wrk, {opts.connections} connections, {opts.duration:g}s "
            f'measured after {opts.warmup:g}s; only statusCode "0" counts'
        )
    )
    for header in ("target", "action", "req/s", "×starlette", "p50 ms", "p99 ms", "errors"):
        table.add_column(header, justify="left" if header in ("target", "action") else "right")
    for header in ("CPU ms/req", "server CPU", "PG ms/req", "wrk CPU", "machine CPU"):
        table.add_column(header, justify="right")
    for r in results.rounds:
        if r.skipped:
            table.add_row(r.target, r.action, f"skipped: {r.skipped}", *[""] * 9)
            continue
        table.add_row(
            r.target,
            r.action + (" (ran out of work)" if r.ran_out_of_work else ""),
            f"{r.rps:.0f}",
            fmt(r.ratio, ".3f"),
            fmt(r.p50_ms, ".1f"),
            fmt(r.p99_ms, ".1f"),
            _errors(r.errors),
            fmt(r.server_cpu_ms_per_req, ".2f"),
            fmt(r.server_cpu_pct, ".0f", "%"),
            fmt(r.postgres_cpu_ms_per_req, ".2f"),
            fmt(r.wrk_cpu_pct, ".0f", "%"),
            fmt(r.machine_cpu_pct, ".0f", "%"),
        )
    print_table_out(table, 160)
    if results.probes:
        probes = Table(title="one kept-alive connection, one request at a time")
        for header in ("target", "requests", "p50 ms", "p99 ms"):
            probes.add_column(header, justify="left" if header == "target" else "right")
        for p in results.probes:
            probes.add_row(p.target, str(p.requests), fmt(p.p50_ms, ".1f"), fmt(p.p99_ms, ".1f"))
        print_table_out(probes, 160)
    if results.fills:
        fills = Table(title=f"filling one meeting, blocks of {FILL_BLOCK} one-phone invites")
        for header in ("target", "members", "first 100/s", "last 100/s", "last/first time"):
            fills.add_column(header, justify="left" if header == "target" else "right")
        for header in ("CPU ms first", "CPU ms last", "whole fill", "errors"):
            fills.add_column(header, justify="right")
        fills.add_column("every block, invites/s")
        for f in results.fills:
            fills.add_row(
                f.target,
                str(f.invited),
                fmt(f.first_rps, ".0f"),
                fmt(f.last_rps, ".0f"),
                fmt(f.cost_ratio, ".2f"),
                fmt(f.block_cpu_ms[0] if f.block_cpu_ms else None, ".1f"),
                fmt(f.block_cpu_ms[-1] if f.block_cpu_ms else None, ".1f"),
                f"{f.seconds:.1f}s",
                _errors(sum((Counter(e) for e in f.block_errors), Counter())),
                " ".join(f"{x:.0f}" for x in f.block_rps),
            )
        print_table_out(fills, 160)
    if results.overloads:
        over = Table(title=f"overload: {opts.duration:g}s measured after {opts.warmup:g}s")
        for header in ("target", "action", "conns", "pause", '"0"/s', '"0" p50', '"0" p99'):
            over.add_column(header, justify="left" if header in ("target", "action") else "right")
        overload = (OVERLOAD, f"{OVERLOAD} p50", f"{OVERLOAD} p99")
        for header in (*overload, "max ms", "other", "server CPU", "wrk CPU"):
            over.add_column(header, justify="right")
        over.add_column("machine CPU", justify="right")
        for o in results.overloads:
            over.add_row(
                o.target,
                o.action + (" (ran out of work)" if o.ran_out_of_work else ""),
                str(o.connections),
                f"{o.pause_ms} ms",
                f"{o.ok_rps:.0f}",
                fmt(o.ok_p50_ms, ".0f"),
                fmt(o.ok_p99_ms, ".0f"),
                str(o.overload),
                fmt(o.overload_p50_ms, ".0f"),
                fmt(o.overload_p99_ms, ".0f"),
                fmt(o.max_ms, ".0f"),
                _errors(o.other),
                fmt(o.server_cpu_pct, ".0f", "%"),
                fmt(o.wrk_cpu_pct, ".0f", "%"),
                fmt(o.machine_cpu_pct, ".0f", "%"),
            )
        print_table_out(over, 160)


# ---- main ---------------------------------------------------------------------------------------


def _subset(parser: Any, value: str, known: tuple[str, ...], what: str) -> tuple[str, ...]:
    chosen = tuple(v.strip() for v in value.split(",") if v.strip())
    if unknown := set(chosen) - set(known):
        parser.error(f"unknown {what}: {', '.join(sorted(unknown))} (known: {', '.join(known)})")
    return chosen


def parse_args(argv: list[str] | None = None) -> Options:
    parser = bench_parser(__doc__, TARGETS)
    parser.add_argument("--actions", default=",".join(ACTIONS), help="comma-separated subset")
    parser.add_argument("--databases", default=",".join(DATABASES), help="comma-separated subset")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per round")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (= threads)")
    parser.add_argument(
        "--ring-seconds", type=float, default=0.2, help="the simulated carrier's ring time"
    )
    parser.add_argument("--invites-per-meeting", type=int, default=50, help="1..50")
    parser.add_argument(
        "--fill-members", type=int, default=1000, help="the meeting to fill (0: skip)"
    )
    parser.add_argument(
        "--overload-connections", type=int, default=256, help="the overload round (0: skip)"
    )
    parser.add_argument("--overload-action", default=wa.INVITE, choices=ACTIONS)
    parser.add_argument(
        "--overload-pauses",
        default=f"0,{round(1000 * RetryPolicy().backoff)}",
        help="one overload round per value: ms a connection waits after -104 before its next "
        "request (default: none, and the SDK's first retry backoff)",
    )
    parser.add_argument(
        "--probe-seconds", type=float, default=2.0, help="one-connection latency probe (0: skip)"
    )
    parser.add_argument(
        "--api-workers",
        default="1",
        help="comma-separated API process counts (serve --workers N: N API processes, the "
        "carrier, dispatcher and clock in a process of their own); counts above 1 run the query "
        "and invite rounds again",
    )
    parser.add_argument(
        "--rev",
        default="",
        help="measure the server code of this git revision (src/ exported with git archive) "
        "instead of the working tree",
    )
    parser.add_argument("--save", default="", metavar="FILE", help="also write the JSON to FILE")
    add_closing_arguments(parser)
    ns = parser.parse_args(argv)
    common = common_options(parser, ns, TARGETS)
    if not 1 <= ns.invites_per_meeting <= 50:
        parser.error("--invites-per-meeting must be 1..50")
    if not 0 <= ns.fill_members <= wa.MAX_MEMBERS_CAP:
        parser.error(f"--fill-members must be 0..{wa.MAX_MEMBERS_CAP}")
    try:
        pauses = tuple(int(v) for v in ns.overload_pauses.split(",") if v.strip())
    except ValueError:
        parser.error("--overload-pauses takes whole milliseconds, e.g. 0,250")
    if len(pauses) > 5 or any(v < 0 for v in pauses):
        parser.error("--overload-pauses: at most 5 values, none negative")
    try:
        api_workers = tuple(int(v) for v in ns.api_workers.split(",") if v.strip()) or (1,)
    except ValueError:
        parser.error("--api-workers takes whole numbers, e.g. 1,2")
    if any(not 1 <= v <= 16 for v in api_workers):
        parser.error("--api-workers: 1..16 each")
    if ns.connections < 1 or ns.duration <= 0 or ns.overload_connections < 0:
        parser.error("--connections and --duration must be > 0")
    return Options(
        **common,
        actions=_subset(parser, ns.actions, ACTIONS, "actions"),
        databases=_subset(parser, ns.databases, DATABASES, "databases"),
        duration=ns.duration,
        warmup=max(0.0, ns.warmup),
        connections=ns.connections,
        ring_seconds=ns.ring_seconds,
        invites_per_meeting=ns.invites_per_meeting,
        fill_members=ns.fill_members,
        overload_connections=ns.overload_connections,
        overload_action=ns.overload_action,
        overload_pauses=pauses,
        probe_seconds=max(0.0, ns.probe_seconds),
        api_workers=api_workers,
        rev=ns.rev,
        save=ns.save,
    )


def versions() -> dict[str, str]:
    import sqlalchemy
    import starlette
    import uvicorn

    found = {
        "wrk": wrk_version(),
        "uvicorn": uvicorn.__version__,
        "starlette": starlette.__version__,
        "sqlalchemy": sqlalchemy.__version__,
    }
    for extra in ("uvloop", "httptools", "orjson"):
        try:
            found[extra] = str(getattr(__import__(extra), "__version__", "present"))
        except ImportError:
            found[extra] = "absent"
    return found


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    require_wrk()
    # The load average before we add ours tells whether others share the CPU.
    host = machine(versions(), rounded=False)
    results = run_interruptible("tm-bench-", lambda workdir: run_all(opts, workdir, host))
    if results is None:
        return 130
    host["loadavg_after"] = load_average(rounded=False)
    config = {k: v for k, v in asdict(opts).items() if k not in ("as_json", "save", "pg_admin_dsn")}
    document = json.dumps({"machine": host, "config": config, **asdict(results)}, indent=2)
    if opts.save:
        Path(opts.save).write_text(document + "\n")
    if opts.as_json:
        print(document)
    else:
        print_tables(results, opts)
        log.print(
            describe_machine(host) + f"; server code {host['commit'][:12]} ({host['source']})"
        )
    skipped = any(r.skipped for r in results.rounds)
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
