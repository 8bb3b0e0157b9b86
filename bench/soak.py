"""Soak: minutes of mixed API traffic at a steady rate against a real `telemeeting serve`,
reported minute by minute (latency percentiles, errors by code, server RSS, open fds, database
size), to show whether anything drifts: latency, memory, descriptors, the database's growth.

    python bench/soak.py                          # 10 minutes on SQLite at half the capacity
    python bench/soak.py --targets sqlite,postgres
    python bench/soak.py --minutes 1 --interval 10 --rate 20 --json

The traffic is what a meeting application sends: createMeeting, inviteJoinMeeting (one new
phone; the simulated carrier rings and answers it), queryMeeting, mute/unmute and kick of an
answered member, destroyMeeting of the oldest meeting, over a pool of live meetings kept near
`--meetings`. Requests are built and signed by the SDK's own request builder (client/_calls.py,
wire/auth.py) and sent open-loop: evenly spaced at `--rate` per second whatever the answers do,
each one's latency counted from when it was due, so a server that falls behind shows it instead
of slowing the load down. Without `--rate`, the capacity is measured first (`--capacity-seconds`
of the same mix as fast as `--capacity-concurrency` connections go) and half of it is used.

The server is started on a fresh database (a SQLite file, or a PostgreSQL database that is
dropped afterwards) with the rate limit off; no callback URL is set, so pushes are recorded but
not sent. Everything is 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
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
    load_average,
    log,
    machine,
    percentile,
    print_json,
    print_table_out,
    process_cpu_seconds,
    run_interruptible,
    served,
    skip_reason,
    system_cpu_ticks,
    target_database,
)
from _pg_activity import (
    LockWaits,
    LockWatch,
    PgActivity,
    PgCounters,
    PgSampler,
    delta,
    with_waits,
)
from _raw_client import RawConnectionError, RawPool, request_bytes
from telemeeting.client._calls import Call, Calls, RetryPolicy
from telemeeting.client.models import Party
from telemeeting.store.database import is_sqlite, sqlite_path
from telemeeting.wire import actions as wa
from telemeeting.wire.status import Status

TARGETS = ("sqlite", "postgres")
#: The mix: each request's action drawn with these weights (adjusted to keep the pool steady).
MIX: dict[str, float] = {
    wa.QUERY_MEETING: 0.35,
    wa.INVITE: 0.25,
    wa.CREATE_MEETING: 0.10,
    wa.DESTROY_MEETING: 0.10,
    wa.MUTE_MEMBER: 0.08,
    wa.UNMUTE_MEMBER: 0.07,
    wa.KICK_MEMBER: 0.05,
}
#: Phones per meeting at most (each answered one is a live leg, mixed by the media role).
PHONES_PER_MEETING = 5
#: A member is acted on (mute, kick) only this long after its invite: answered by then.
ANSWERED_AFTER_SECONDS = 2.0
#: The one label for an answer that is not an envelope (timeout, reset, garbage).
TRANSPORT = "transport"
REQUEST_TIMEOUT = 60.0


# ---- the workload -------------------------------------------------------------------------------


@dataclass
class LiveMeeting:
    meid: str
    created: float
    #: (phone, when invited), in invitation order; kicked ones are removed.
    phones: list[tuple[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Planned:
    """One request to send and what to do with its envelope once it succeeded."""

    action: str
    call: Call
    on_ok: Callable[[dict[str, Any]], None]


class Workload:
    """The meetings this run has made and the next request of the mix (no I/O)."""

    def __init__(self, calls: Calls, meetings: int, seed: int) -> None:
        self.calls = calls
        self.target = meetings
        self.rng = random.Random(seed)
        self.pool: list[LiveMeeting] = []
        self._phones = 0
        self._actions = list(MIX)
        self._weights = [MIX[a] for a in self._actions]

    def _phone(self) -> str:
        """A new mobile number the simulated carrier answers (no special suffix, spec §8)."""
        self._phones += 1
        return f"137{self._phones % 10**7:07d}1"

    def _answered(self, now: float) -> tuple[LiveMeeting, str] | None:
        candidates = [
            (meeting, phone)
            for meeting in self.rng.sample(self.pool, min(len(self.pool), 8))
            for phone, invited in meeting.phones
            if now - invited >= ANSWERED_AFTER_SECONDS
        ]
        return self.rng.choice(candidates) if candidates else None

    def _choose(self) -> str:
        action = self.rng.choices(self._actions, self._weights)[0]
        if action == wa.CREATE_MEETING and len(self.pool) >= 2 * self.target:
            return wa.DESTROY_MEETING
        if action == wa.DESTROY_MEETING and len(self.pool) <= self.target // 2:
            return wa.CREATE_MEETING
        return action

    def next(self, now: float) -> Planned:
        action = self._choose() if self.pool else wa.CREATE_MEETING
        if action in (wa.MUTE_MEMBER, wa.UNMUTE_MEMBER, wa.KICK_MEMBER):
            found = self._answered(now)
            if found is None:
                action = wa.INVITE
            else:
                return self._on_member(action, *found)
        if action == wa.INVITE:
            some = self.rng.sample(self.pool, min(len(self.pool), 8))
            roomy = [m for m in some if len(m.phones) < PHONES_PER_MEETING]
            if roomy:
                return self._invite(self.rng.choice(roomy), now)
            action = wa.QUERY_MEETING
        if action == wa.CREATE_MEETING:
            return self._create(now)
        if action == wa.DESTROY_MEETING:
            oldest = self.pool.pop(0)  # gone from the pool now: nothing else targets it
            return Planned(
                action, self.calls.on_meeting(action, oldest.meid, None), lambda _answer: None
            )
        meeting = self.rng.choice(self.pool)
        return Planned(wa.QUERY_MEETING, self.calls.query_meeting(meeting.meid), lambda _: None)

    def _create(self, now: float) -> Planned:
        call = self.calls.create_meeting(
            meeting_name="soak",
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

        def created(answer: dict[str, Any]) -> None:
            self.pool.append(LiveMeeting(str(answer.get("meid", "")), now))

        return Planned(wa.CREATE_MEETING, call, created)

    def _invite(self, meeting: LiveMeeting, now: float) -> Planned:
        phone = self._phone()
        meeting.phones.append((phone, now))  # counted at once: no second invite overfills it
        call = self.calls.invite(meeting.meid, [Party(phone, "soak")], None, None)
        return Planned(wa.INVITE, call, lambda _answer: None)

    def _on_member(self, action: str, meeting: LiveMeeting, phone: str) -> Planned:
        if action == wa.KICK_MEMBER:
            meeting.phones = [(p, t) for p, t in meeting.phones if p != phone]
            if not meeting.phones:  # the last one: the meeting ends with it (empty)
                self.pool.remove(meeting)
        call = self.calls.on_member(action, meeting.meid, phone, None)
        return Planned(action, call, lambda _answer: None)


# ---- measuring the server -----------------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def open_fds(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue
    return total


class DatabaseSize:
    """The database's size in bytes: the SQLite file and its WAL, or pg_database_size."""

    def __init__(self, url: str, pg_admin_dsn: str) -> None:
        self.url = url
        self._admin = pg_admin_dsn
        self._name = url.rsplit("/", 1)[1]

    async def bytes(self) -> int:
        if is_sqlite(self.url):
            path = Path(sqlite_path(self.url))
            files = (path, path.with_name(path.name + "-wal"))
            return sum(f.stat().st_size for f in files if f.exists())
        import asyncpg

        conn = await asyncpg.connect(self._admin, timeout=5)
        try:
            return int(await conn.fetchval("SELECT pg_database_size($1)", self._name))
        finally:
            await conn.close()


@dataclass
class Sample:
    """The server at one moment."""

    at: float
    rss_kib: int
    fds: int
    db_bytes: int
    cpu_seconds: float
    machine_ticks: tuple[int, int]
    load1: float
    live_meetings: int
    #: PostgreSQL's counters (WAL, checkpoints, cache, dead tuples); None on SQLite.
    pg: PgCounters | None = None
    #: PostgreSQL: the lock waiters seen since the previous sample.
    waits: LockWaits | None = None


async def sample(
    pid: int,
    size: DatabaseSize,
    live_meetings: int,
    pg: PgSampler | None = None,
    locks: LockWatch | None = None,
) -> Sample:
    pids = _tree(pid)
    cpu = sum(process_cpu_seconds(p) or 0.0 for p in pids)
    return Sample(
        time.monotonic(),
        rss_kib(pids),
        open_fds(pids),
        await size.bytes(),
        cpu,
        system_cpu_ticks() or (0, 0),
        load_average()[0],
        live_meetings,
        await pg.counters() if pg is not None else None,
        locks.take() if locks is not None else None,
    )


# ---- running ------------------------------------------------------------------------------------


@dataclass
class Window:
    """The requests due in one interval and what became of them."""

    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)
    by_action: Counter[str] = field(default_factory=Counter)
    skipped: int = 0  # not sent: the client already had --max-in-flight requests out


async def _send(client: RawPool, calls: Calls, planned: Planned) -> str:
    """The answer's statusCode (TRANSPORT when there is no envelope); runs on_ok on success."""
    try:
        _, content = await client.post(request_bytes(*calls.request(planned.call)))
        answer = json.loads(content)
    except (RawConnectionError, ValueError):
        return TRANSPORT
    if not isinstance(answer, dict) or "statusCode" not in answer:
        return TRANSPORT
    code = str(answer["statusCode"])
    if code == Status.OK.code:
        planned.on_ok(answer)
    return code


async def measure_capacity(
    client: RawPool, workload: Workload, seconds: float, concurrency: int
) -> float:
    """Successful requests per second of the mix, closed-loop at `concurrency`."""
    done = 0
    end = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < end:
            code = await _send(client, workload.calls, workload.next(time.monotonic()))
            done += code == Status.OK.code

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.monotonic() - started)


async def run_open_loop(
    client: RawPool,
    workload: Workload,
    rate: float,
    windows: list[Window],
    interval: float,
    max_in_flight: int,
    on_boundary: Callable[[int], Awaitable[None]],
) -> None:
    """Requests due every 1/rate s, filling `windows` one `interval` each; `on_boundary(k)` is
    awaited at the start (k=0) and at the end of every interval. Returns once every request
    sent has its answer (or timed out)."""
    tasks: set[asyncio.Task[None]] = set()
    start = time.monotonic()

    async def one(window: Window, planned: Planned, due: float) -> None:
        code = await _send(client, workload.calls, planned)
        window.latencies_ms.append((time.monotonic() - due) * 1000)
        window.codes[code] += 1
        window.by_action[planned.action] += 1

    async def boundaries() -> None:
        for k in range(len(windows) + 1):
            await asyncio.sleep(max(0.0, start + k * interval - time.monotonic()))
            await on_boundary(k)

    sampler = asyncio.create_task(boundaries())
    n = 0
    while True:
        due = start + n / rate
        index = int((due - start) // interval)
        if index >= len(windows):
            break
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        window = windows[index]
        if len(tasks) >= max_in_flight:
            window.skipped += 1
        else:
            window.sent += 1
            task = asyncio.create_task(one(window, workload.next(time.monotonic()), due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        n += 1
    if tasks:
        await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT)
    await sampler


# ---- results ------------------------------------------------------------------------------------


@dataclass
class Minute:
    """One interval's row."""

    index: int
    requests: int
    ok: int
    skipped: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    errors: dict[str, int]
    rss_mib: float
    fds: int
    db_mib: float
    server_cpu_pct: float
    machine_cpu_pct: float
    load1: float
    live_meetings: int
    #: PostgreSQL's activity in the interval (None on SQLite).
    pg: PgActivity | None = None


@dataclass
class Result:
    target: str
    minutes_planned: float
    interval_s: float
    capacity_rps: float | None
    rate_rps: float
    ring_seconds: float
    meetings: int
    rows: list[Minute] = field(default_factory=list)
    rss_growth_pct: float | None = None
    fds_growth: int | None = None
    p99_first_ms: float | None = None
    p99_last_ms: float | None = None
    p99_max_ms: float | None = None
    db_growth_mib_per_min: float | None = None
    #: PostgreSQL: the largest tables at the end (name, MiB with indexes, live and dead rows).
    largest_tables: list[dict[str, float | int | str]] = field(default_factory=list)
    skipped: str = ""

    def summarize(self) -> None:
        rows = self.rows
        if len(rows) < 2:
            return
        # Growth from the end of the first interval (warm: pools, caches, prepared statements).
        first, last = rows[0], rows[-1]
        self.rss_growth_pct = round((last.rss_mib / first.rss_mib - 1) * 100, 1)
        self.fds_growth = last.fds - first.fds
        p99s = [r.p99_ms for r in rows if r.p99_ms is not None]
        if p99s:
            self.p99_first_ms, self.p99_last_ms, self.p99_max_ms = p99s[0], p99s[-1], max(p99s)
        minutes = (len(rows) - 1) * self.interval_s / 60
        self.db_growth_mib_per_min = round((last.db_mib - first.db_mib) / minutes, 3)


def _row(index: int, window: Window, before: Sample, after: Sample) -> Minute:
    ordered = sorted(window.latencies_ms)

    def pct(p: float) -> float | None:
        return round(percentile(ordered, p), 1) if ordered else None

    wall = max(after.at - before.at, 1e-9)
    busy = after.machine_ticks[0] - before.machine_ticks[0]
    total = after.machine_ticks[1] - before.machine_ticks[1]
    errors = {code: n for code, n in window.codes.items() if code != Status.OK.code}
    return Minute(
        index=index + 1,
        requests=window.sent,
        ok=window.codes.get(Status.OK.code, 0),
        skipped=window.skipped,
        p50_ms=pct(50),
        p95_ms=pct(95),
        p99_ms=pct(99),
        max_ms=round(ordered[-1], 1) if ordered else None,
        errors=dict(sorted(errors.items())),
        rss_mib=round(after.rss_kib / 1024, 1),
        fds=after.fds,
        db_mib=round(after.db_bytes / 2**20, 2),
        server_cpu_pct=round((after.cpu_seconds - before.cpu_seconds) / wall * 100, 1),
        machine_cpu_pct=round(busy / total * 100, 1) if total else 0.0,
        load1=after.load1,
        live_meetings=after.live_meetings,
        pg=with_waits(delta(before.pg, after.pg), after.waits) if before.pg and after.pg else None,
    )


@dataclass(frozen=True)
class Options(BenchOptions):
    minutes: float
    interval: float
    rate: float | None
    capacity_seconds: float
    capacity_concurrency: int
    ring_seconds: float
    meetings: int
    max_in_flight: int
    connections: int
    seed: int


#: The server's settings beyond _common.served's: no web console (its fixed port may be taken by
#: another server on the machine, and the soak does not measure it).
SERVER_ENV = {"TELEMEETING_CONSOLE_PORT": "0"}


def soak_target(target: str, opts: Options, workdir: Path) -> Result:
    os.environ.update(SERVER_ENV)  # served() passes our environment on to the server
    with target_database(target, opts.pg_admin_dsn, workdir) as db_url:
        pg = None if is_sqlite(db_url) else PgSampler(opts.pg_admin_dsn, db_url)
        if pg is not None:
            asyncio.run(pg.timed())
        account = cli_json("account", "create", "--name", "soak", db=db_url)
        app = cli_json("app", "create", "--account", account["sid"], "--env", "sandbox", db=db_url)
        log_path = workdir / f"server-{target}.log"
        with served(db_url, opts.ring_seconds, log_path, sandbox=True, who="server") as (
            proc,
            base_url,
        ):
            calls = Calls(
                account["sid"], account["auth_token"], app["appid"], base_url, ZONE, RetryPolicy(0)
            )
            size = DatabaseSize(db_url, opts.pg_admin_dsn)
            return asyncio.run(_soak(target, opts, calls, proc.pid, size, pg))


async def _soak(
    target: str, opts: Options, calls: Calls, pid: int, size: DatabaseSize, pg: PgSampler | None
) -> Result:
    port = urlsplit(calls.base_url).port or 80
    client = RawPool(HOST, port, opts.connections, REQUEST_TIMEOUT)
    try:
        workload = Workload(calls, opts.meetings, opts.seed)
        capacity = None
        rate = opts.rate
        if rate is None:
            log.print(f"{target}: measuring capacity for {opts.capacity_seconds:g}s …")
            capacity = await measure_capacity(
                client, workload, opts.capacity_seconds, opts.capacity_concurrency
            )
            rate = max(1.0, round(capacity / 2, 1))
            log.print(f"{target}: capacity {capacity:.1f} requests/s; soaking at {rate:g}/s")
        result = Result(
            target,
            opts.minutes,
            opts.interval,
            round(capacity, 1) if capacity is not None else None,
            rate,
            opts.ring_seconds,
            opts.meetings,
        )
        samples: list[Sample] = []
        windows = [Window() for _ in range(max(1, round(opts.minutes * 60 / opts.interval)))]

        async def boundary(k: int) -> None:
            samples.append(await sample(pid, size, len(workload.pool), pg, locks))
            if k > 0:  # progress (a few of the interval's requests may still be out)
                row = _row(k - 1, windows[k - 1], samples[k - 1], samples[k])
                log.print(
                    f"{target} {row.index}: {row.requests} requests, p50 {row.p50_ms} ms, "
                    f"p99 {row.p99_ms} ms, errors {row.errors or '-'}, RSS {row.rss_mib} MiB, "
                    f"{row.fds} fds, DB {row.db_mib} MiB, server CPU {row.server_cpu_pct}%, "
                    f"load {row.load1}" + (f", {_pg_line(row.pg)}" if row.pg else "")
                )

        locks = None
        if pg is not None:
            locks = LockWatch(opts.pg_admin_dsn, pg.db_url)
            await locks.start()
        try:
            await run_open_loop(
                client, workload, rate, windows, opts.interval, opts.max_in_flight, boundary
            )
        finally:
            if locks is not None:
                await locks.stop()
        # Rows again now that every request has its answer (the samples stay the boundaries').
        result.rows = [
            _row(k, windows[k], samples[k], samples[k + 1]) for k in range(len(samples) - 1)
        ]
        result.summarize()
        if pg is not None:
            result.largest_tables = await pg.largest_tables()
        return result
    finally:
        await client.close()


def _pg_line(pg: PgActivity) -> str:
    return (
        f"WAL {pg.wal_mib} MiB ({pg.fpi_pct}% full-page images), {pg.wal_syncs} fsyncs "
        f"of {pg.wal_sync_avg_ms} ms, {pg.checkpoints} checkpoints "
        f"({pg.checkpoint_s}s writing), cache miss {pg.cache_miss_pct}%, "
        f"{pg.dead_tuples} dead tuples, {pg.autovacuums} autovacuums, lock waiters "
        f"{pg.lock_waiters_avg} on average, {pg.lock_waiters_max} at most"
        + (f" ({pg.lock_wait_top}…)" if pg.lock_wait_top else "")
    )


# ---- reporting and the command line -------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}" if value >= 100 else f"{value:.1f}"


#: PostgreSQL's columns: the instance's WAL (MiB, full-page images' share of the records, the
#: mean fsync of the bench database's sessions),
#: checkpoints ended and their write+sync seconds, the bench database's cache misses, dead tuples
#: at the row's end, autovacuum runs, sessions waiting for a lock (mean, and most at once).
PG_COLUMNS = (
    "WAL MiB",
    "FPI %",
    "fsync ms",
    "ckpt",
    "ckpt s",
    "miss %",
    "dead",
    "autovac",
    "lock waiters",
)


def _pg_cells(pg: PgActivity | None) -> tuple[str, ...]:
    if pg is None:
        return ("-",) * len(PG_COLUMNS)
    return (
        f"{pg.wal_mib:.0f}",
        f"{pg.fpi_pct:.1f}",
        f"{pg.wal_sync_avg_ms:.2f}",
        str(pg.checkpoints),
        f"{pg.checkpoint_s:.0f}",
        f"{pg.cache_miss_pct:.2f}",
        str(pg.dead_tuples),
        str(pg.autovacuums),
        f"{pg.lock_waiters_avg:g} ({pg.lock_waiters_max})",
    )


def print_table(result: Result) -> None:
    rate = f"{result.rate_rps:g}/s"
    if result.capacity_rps is not None:
        rate += f" (half of the measured {result.capacity_rps:g}/s)"
    table = Table(title=f"soak on {result.target}: {rate}, {result.interval_s:g}s rows")
    for header in ("#", "requests", '"0"', "p50 ms", "p95 ms", "p99 ms", "max ms"):
        table.add_column(header, justify="right")
    table.add_column("errors by code")
    for header in ("meetings", "RSS MiB", "fds", "DB MiB", "server CPU", "machine CPU", "load"):
        table.add_column(header, justify="right")
    with_pg = any(row.pg for row in result.rows)
    if with_pg:
        for header in PG_COLUMNS:
            table.add_column(header, justify="right")
    for row in result.rows:
        errors = ", ".join(f"{code}×{n}" for code, n in row.errors.items()) or "-"
        if row.skipped:
            errors += f" (+{row.skipped} not sent)"
        table.add_row(
            str(row.index),
            str(row.requests),
            str(row.ok),
            _ms(row.p50_ms),
            _ms(row.p95_ms),
            _ms(row.p99_ms),
            _ms(row.max_ms),
            errors,
            str(row.live_meetings),
            f"{row.rss_mib:.1f}",
            str(row.fds),
            f"{row.db_mib:.2f}",
            f"{row.server_cpu_pct:.0f}%",
            f"{row.machine_cpu_pct:.0f}%",
            f"{row.load1:.2f}",
            *(_pg_cells(row.pg) if with_pg else ()),
        )
    print_table_out(table, 230 if with_pg else 170)
    if result.rss_growth_pct is not None:
        print(
            f"{result.target}: p99 {_ms(result.p99_first_ms)} ms in the first row, "
            f"{_ms(result.p99_last_ms)} ms in the last, {_ms(result.p99_max_ms)} ms at most; "
            f"RSS {result.rss_growth_pct:+.1f} % and fds {result.fds_growth:+d} from the end of "
            f"the first row to the end; database +{result.db_growth_mib_per_min:.2f} MiB/min"
        )
    if result.largest_tables:
        print(
            f"{result.target}: largest tables (MiB with indexes, live/dead rows): "
            + ", ".join(
                f"{t['table']} {t['mib']} ({t['live']}/{t['dead']})" for t in result.largest_tables
            )
        )


def parse_options(argv: list[str] | None) -> Options:
    parser = bench_parser(__doc__ or "", TARGETS)
    parser.set_defaults(targets="sqlite")
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds per row")
    parser.add_argument("--rate", type=float, help="requests/s (default: half the capacity)")
    parser.add_argument("--capacity-seconds", type=float, default=20.0)
    parser.add_argument("--capacity-concurrency", type=int, default=16)
    parser.add_argument(
        "--ring-seconds", type=float, default=0.3, help="TELEMEETING_SIM_RING_SECONDS"
    )
    parser.add_argument("--meetings", type=int, default=20, help="live meetings kept about")
    parser.add_argument(
        "--max-in-flight", type=int, default=512, help="client-side bound on requests out"
    )
    parser.add_argument("--connections", type=int, default=64, help="kept-alive connections")
    parser.add_argument("--seed", type=int, default=0)
    add_closing_arguments(parser)
    ns = parser.parse_args(argv)
    if ns.minutes <= 0 or ns.interval <= 0 or ns.interval > ns.minutes * 60:
        parser.error("--minutes and --interval must be > 0, the interval at most the run")
    if ns.rate is not None and ns.rate <= 0:
        parser.error("--rate must be > 0")
    return Options(
        **common_options(parser, ns, TARGETS),
        minutes=ns.minutes,
        interval=ns.interval,
        rate=ns.rate,
        capacity_seconds=ns.capacity_seconds,
        capacity_concurrency=ns.capacity_concurrency,
        ring_seconds=ns.ring_seconds,
        meetings=ns.meetings,
        max_in_flight=ns.max_in_flight,
        connections=ns.connections,
        seed=ns.seed,
    )


def main(argv: list[str] | None = None) -> int:
    opts = parse_options(argv)
    host = machine()

    def run(workdir: Path) -> list[Result]:
        results = []
        for target in opts.targets:
            try:
                results.append(soak_target(target, opts, workdir))
            except Exception as exc:  # one broken target must not hide the others
                reason = skip_reason(target, exc, whole=True)
                results.append(Result(target, opts.minutes, opts.interval, None, 0, 0, 0))
                results[-1].skipped = reason
        return results

    results = run_interruptible("soak-", run)
    if results is None:
        return 130
    if opts.as_json:
        print_json(host, opts, results)
    else:
        for result in results:
            if not result.skipped:
                print_table(result)
        print(describe_machine(host) + f"; loopback {HOST}")
    return 1 if any(r.skipped for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
