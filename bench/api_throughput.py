"""API throughput: signed `inviteJoinMeeting` through the real HTTP stack, against a baseline.

For each target (a bare auth-checking endpoint on the same uvicorn + Starlette stack, then the
real server on SQLite, then on a fresh PostgreSQL database) this starts the server as a
subprocess, prepares an account, a sandbox app and enough meetings, and runs a separate load
process (httpx, bounded concurrency, bounded time and request count). Only statusCode "0" counts
as a success. Every process it starts is stopped again, on Ctrl-C too; all traffic is 127.0.0.1.

    python bench/api_throughput.py                 # all three targets, ~1 minute
    python bench/api_throughput.py --json          # machine-readable results on stdout
    python bench/api_throughput.py --targets baseline,sqlite --duration 5

The load process is this file again, run with `--load-worker SPEC` (internal).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import secrets
import ssl
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AsyncExitStack, ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # bench/ is not a package: found through sys.path above
    HOST,
    REQUEST_TIMEOUT,
    STARTUP_TIMEOUT,
    BenchOptions,
    add_closing_arguments,
    bench_parser,
    cli_json,
    common_options,
    create_meeting,
    describe_machine,
    fan_out,
    fmt,
    free_port,
    load_average,
    log,
    machine,
    percentile,
    post_signed,
    print_json,
    print_table_out,
    process_cpu_seconds,
    run_interruptible,
    served,
    skip_reason,
    spawned,
    tail,
    target_database,
    wait_until_listening,
)

HERE = Path(__file__).resolve().parent
TARGETS = ("baseline", "sqlite", "postgres")
#: The baseline needs no prepared meetings, so its cap only keeps the loop bounded.
BASELINE_MAX_REQUESTS = 1_000_000


# ---- settings and results -----------------------------------------------------------------------


@dataclass(frozen=True)
class Options(BenchOptions):
    """The command line, parsed once and passed down (the load process gets a JSON spec)."""

    duration: float
    warmup: float
    concurrency: int
    max_requests: int
    invites_per_meeting: int
    load_procs: int
    ring_seconds: float


@dataclass
class Result:
    """One target's figures; also the shape of each `--json` result."""

    target: str
    completed: int = 0
    successes: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    server_cpu_pct: float | None = None
    load_cpu_pct: float = 0.0
    ran_out_of_work: bool = False
    skipped: str = ""
    ratio_rps: float | None = None
    ratio_p50: float | None = None
    ratio_p99: float | None = None

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclass(frozen=True)
class Target:
    """A started server: where to send requests and whom to sign as."""

    base_url: str
    sid: str
    token: str
    appid: str
    pid: int


# ---- requests -----------------------------------------------------------------------------------


def phone_for(index: int) -> str:
    """A distinct mobile number whose last digit (1) avoids every special sim suffix (spec §8)."""
    return f"139{index % 10**7:07d}1"


async def create_meetings(target: Target, count: int, concurrency: int = 8) -> list[str]:
    """`count` meetings (fewer workers than the load, so setup stays quick and polite)."""
    meids: list[str] = []

    async def create(client: httpx.AsyncClient, _k: int) -> None:
        body = {"appid": target.appid, "meetingname": "bench"}
        answer = await create_meeting(client, target.base_url, target.sid, target.token, body)
        meids.append(str(answer["meid"]))

    await fan_out(count, concurrency, create)
    return meids


def work_items(meids: list[str], count: int) -> list[tuple[str, str]]:
    """(meid, phone) pairs, round-robin over meetings so concurrent invites rarely share a row."""
    return [(meids[i % len(meids)], phone_for(i)) for i in range(count)]


# ---- the load process ---------------------------------------------------------------------------


async def drive(spec: dict[str, Any]) -> dict[str, Any]:
    """Send invites until the measured window closes or the work runs out; time each one.

    Only responses completing inside [warm-up end, window end] are measured, so requests in
    flight at either edge neither inflate nor deflate the rate. CPU use of this process and of
    the server is sampled at the same two instants.
    """
    target = Target(**spec["target"])
    items: Iterator[list[str] | tuple[str, str]] = (
        iter(spec["items"])
        if spec["items"] is not None
        else (("0", phone_for(i)) for i in range(BASELINE_MAX_REQUESTS))
    )
    codes: Counter[str] = Counter()
    latencies: list[float] = []
    cpu: dict[str, float | None] = {}
    last_done = 0.0

    async def worker(client: httpx.AsyncClient, warm_end: float, end: float) -> None:
        nonlocal last_done
        while time.perf_counter() < end:
            item = next(items, None)
            if item is None:
                return
            meid, phone = item
            body = {
                "action": "inviteJoinMeeting",
                "appid": target.appid,
                "confid": meid,
                "parties": [{"name": "bench", "phone": phone}],
            }
            sent = time.perf_counter()
            try:
                answer = await post_signed(client, target.base_url, target.sid, target.token, body)
                code = str(answer.get("statusCode"))
            except (httpx.HTTPError, ValueError) as exc:
                code = type(exc).__name__
            done = time.perf_counter()
            if warm_end <= done <= end:
                codes[code] += 1
                last_done = done
                if code == "0":
                    latencies.append(done - sent)

    async def sample_cpu(warm_end: float, end: float) -> None:
        for label, at in (("0", warm_end), ("1", end)):
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            cpu["load" + label] = time.process_time()
            cpu["server" + label] = process_cpu_seconds(target.pid)

    # One single-connection client per worker: httpcore's shared pool scans every connection on
    # each request, which at this concurrency costs the load process more than the requests do.
    # They share one TLS context because building one per client takes ~50 ms (plain HTTP here).
    tls = ssl.create_default_context()
    limits = httpx.Limits(max_connections=1)
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(timeout=REQUEST_TIMEOUT, limits=limits, verify=tls)
            )
            for _ in range(spec["concurrency"])
        ]
        warm_end = time.perf_counter() + spec["warmup"]
        end = warm_end + spec["duration"]
        sampler = asyncio.create_task(sample_cpu(warm_end, end))
        window = asyncio.gather(*(worker(client, warm_end, end) for client in clients))
        await asyncio.wait_for(window, spec["warmup"] + spec["duration"] + 2 * REQUEST_TIMEOUT)
        ran_out = last_done < end - 0.5
        if ran_out:  # the window closed early: sample now instead of idling until `end`
            sampler.cancel()
            cpu["load1"], cpu["server1"] = time.process_time(), process_cpu_seconds(target.pid)
        else:
            await sampler
    elapsed = max(1e-9, (last_done if ran_out else end) - warm_end)
    server0, server1 = cpu.get("server0"), cpu.get("server1")
    return {
        "codes": dict(codes),
        "latencies": latencies,
        "elapsed": elapsed,
        "load_cpu": (cpu.get("load1") or 0.0) - (cpu.get("load0") or 0.0),
        "server_cpu": server1 - server0 if server0 is not None and server1 is not None else None,
        "ran_out": ran_out,
    }


def load_worker_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    print(json.dumps(asyncio.run(drive(spec))))


def run_load(
    target: Target, items: list[tuple[str, str]] | None, opts: Options, workdir: Path, name: str
) -> Result:
    """Run `opts.load_procs` load processes on disjoint slices of the work; merge their counts.

    `items` None means any meeting and phone will do (the baseline looks nothing up).
    """
    outputs: list[dict[str, Any]] = []
    per_proc = max(1, opts.concurrency // opts.load_procs)
    budget = opts.warmup + opts.duration + 2 * REQUEST_TIMEOUT + STARTUP_TIMEOUT
    with ExitStack() as stack:
        procs = []
        for k in range(opts.load_procs):
            spec_path = workdir / f"{name}-load-{k}.json"
            spec = {
                "target": asdict(target),
                "items": None if items is None else items[k :: opts.load_procs],
                "concurrency": per_proc,
                "warmup": opts.warmup,
                "duration": opts.duration,
            }
            spec_path.write_text(json.dumps(spec))
            out_path = workdir / f"{name}-load-{k}.out"
            args = [sys.executable, str(Path(__file__).resolve()), "--load-worker", str(spec_path)]
            procs.append((stack.enter_context(spawned(args, out_path)), out_path))
        for proc, out_path in procs:
            try:
                proc.wait(budget)
            except subprocess.TimeoutExpired as exc:
                raise RuntimeError(f"load process overran {budget:.0f}s") from exc
            if proc.returncode != 0:
                raise RuntimeError(f"load process failed:\n{tail(out_path)}")
            outputs.append(json.loads(out_path.read_text().strip().splitlines()[-1]))
    return merge(name, outputs)


def merge(name: str, outputs: list[dict[str, Any]]) -> Result:
    codes: Counter[str] = Counter()
    latencies: list[float] = []
    for out in outputs:
        codes.update(out["codes"])
        latencies.extend(out["latencies"])
    elapsed = max(out["elapsed"] for out in outputs)
    successes = codes.pop("0", 0)
    result = Result(
        target=name,
        completed=successes + sum(codes.values()),
        successes=successes,
        errors=dict(codes),
        elapsed_s=round(elapsed, 3),
        rps=round(successes / elapsed, 1),
        load_cpu_pct=round(100 * sum(o["load_cpu"] for o in outputs) / elapsed, 1),
        ran_out_of_work=any(o["ran_out"] for o in outputs),
    )
    server_cpu = [o["server_cpu"] for o in outputs if o["server_cpu"] is not None]
    if server_cpu:  # every load process saw the same server; average their views
        result.server_cpu_pct = round(100 * statistics.fmean(server_cpu) / elapsed, 1)
    if latencies:
        latencies.sort()
        result.p50_ms = round(1000 * percentile(latencies, 50), 2)
        result.p99_ms = round(1000 * percentile(latencies, 99), 2)
    return result


# ---- the targets --------------------------------------------------------------------------------


def bench_baseline(opts: Options, workdir: Path) -> Result:
    port = free_port()
    sid, token = secrets.token_hex(16), secrets.token_hex(16)
    args = [sys.executable, str(HERE / "_baseline_app.py"), str(port)]
    env = {"BENCH_BASELINE_SID": sid, "BENCH_BASELINE_TOKEN": token}
    log_path = workdir / "baseline.log"
    with spawned(args, log_path, env) as proc:
        wait_until_listening(proc, port, log_path, who="server")
        target = Target(f"http://{HOST}:{port}", sid, token, "baseline-app", proc.pid)
        log.print(f"baseline: load for {opts.warmup:g}+{opts.duration:g}s")
        return run_load(target, None, opts, workdir, "baseline")


def bench_server(name: str, db_url: str, opts: Options, workdir: Path) -> Result:
    """The real `telemeeting serve` on `db_url`, driven on its sandbox listener."""
    account = cli_json("account", "create", "--name", "bench", db=db_url)
    app = cli_json("app", "create", "--account", account["sid"], "--env", "sandbox", db=db_url)
    log_path = workdir / f"{name}.log"
    with served(db_url, opts.ring_seconds, log_path, sandbox=True, who="server") as (proc, url):
        target = Target(url, account["sid"], account["auth_token"], app["appid"], proc.pid)
        meetings = math.ceil(opts.max_requests / opts.invites_per_meeting)
        began = time.perf_counter()
        meids = asyncio.run(create_meetings(target, meetings))
        log.print(
            f"{name}: {len(meids)} meetings created in {time.perf_counter() - began:.1f}s; "
            f"load for {opts.warmup:g}+{opts.duration:g}s"
        )
        return run_load(target, work_items(meids, opts.max_requests), opts, workdir, name)


def run_target(name: str, opts: Options, workdir: Path) -> Result:
    try:
        if name == "baseline":
            return bench_baseline(opts, workdir)
        with target_database(name, opts.pg_admin_dsn, workdir) as url:
            return bench_server(name, url, opts, workdir)
    except Exception as exc:  # one broken target must not hide the others
        return Result(target=name, skipped=skip_reason(name, exc, whole=True))


# ---- reporting ----------------------------------------------------------------------------------


def add_ratios(results: list[Result]) -> None:
    base = next((r for r in results if r.target == "baseline" and not r.skipped), None)
    if base is None or not base.rps:
        return
    for r in results:
        if r.skipped:
            continue
        r.ratio_rps = round(r.rps / base.rps, 3)
        r.ratio_p50 = round(r.p50_ms / base.p50_ms, 2) if base.p50_ms else None
        r.ratio_p99 = round(r.p99_ms / base.p99_ms, 2) if base.p99_ms else None


def print_table(results: list[Result], opts: Options) -> None:
    table = Table(
        title=(
            f"inviteJoinMeeting, concurrency {opts.concurrency}, "
            f"{opts.duration:g}s measured after {opts.warmup:g}s warm-up"
        )
    )
    for header in ("target", "req/s", "p50 ms", "p99 ms", "ok", "errors"):
        table.add_column(header, justify="left" if header == "target" else "right")
    for header in ("req/s ×base", "p50 ×base", "p99 ×base", "server CPU", "load CPU"):
        table.add_column(header, justify="right")
    for r in results:
        if r.skipped:
            table.add_row(r.target, f"skipped: {r.skipped}", *[""] * 9)
            continue
        errors = ", ".join(f"{code}×{n}" for code, n in sorted(r.errors.items())) or "0"
        table.add_row(
            r.target + (" (ran out of work)" if r.ran_out_of_work else ""),
            f"{r.rps:.0f}",
            f"{r.p50_ms:.1f}",
            f"{r.p99_ms:.1f}",
            str(r.successes),
            errors,
            fmt(r.ratio_rps, ".3f"),
            fmt(r.ratio_p50, ".1f"),
            fmt(r.ratio_p99, ".1f"),
            fmt(r.server_cpu_pct, ".0f") + "%",
            f"{r.load_cpu_pct:.0f}%",
        )
    print_table_out(table, 150)


# ---- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> Options | str:
    parser = bench_parser(__doc__, TARGETS)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per target")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument(
        "--max-requests",
        type=int,
        default=3000,
        help="cap per database target; sizes the pool of pre-created meetings",
    )
    parser.add_argument("--invites-per-meeting", type=int, default=50, help="≤ 100 (max members)")
    parser.add_argument("--load-procs", type=int, default=1, help="load generator processes")
    parser.add_argument(
        "--ring-seconds", type=float, default=0.2, help="TELEMEETING_SIM_RING_SECONDS"
    )
    add_closing_arguments(parser)
    parser.add_argument("--load-worker", metavar="SPEC", help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.load_worker:
        return str(ns.load_worker)
    common = common_options(parser, ns, TARGETS)
    if not 1 <= ns.invites_per_meeting <= 100:
        parser.error("--invites-per-meeting must be 1..100 (the default member limit)")
    if ns.concurrency < 1 or ns.load_procs < 1 or ns.max_requests < 1 or ns.duration <= 0:
        parser.error("--concurrency, --load-procs, --max-requests and --duration must be > 0")
    return Options(
        **common,
        duration=ns.duration,
        warmup=max(0.0, ns.warmup),
        concurrency=ns.concurrency,
        max_requests=ns.max_requests,
        invites_per_meeting=ns.invites_per_meeting,
        load_procs=ns.load_procs,
        ring_seconds=ns.ring_seconds,
    )


def main(argv: list[str] | None = None) -> int:
    parsed = parse_args(argv)
    if isinstance(parsed, str):
        load_worker_main(parsed)
        return 0
    opts = parsed
    # The load average before we add ours tells whether others share the CPU.
    host = machine({"httpx": httpx.__version__}, rounded=False)
    results = run_interruptible(
        "tm-bench-", lambda workdir: [run_target(name, opts, workdir) for name in opts.targets]
    )
    if results is None:
        return 130
    add_ratios(results)
    if opts.as_json:
        host["loadavg_after"] = load_average(rounded=False)
        print_json(host, opts, results)
    else:
        print_table(results, opts)
        log.print(describe_machine(host))
    return 0 if all(not r.skipped and not r.errors for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
