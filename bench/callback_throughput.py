"""Callback throughput: how fast the outbox dispatcher pushes status events, against a baseline.

For each target (the real `telemeeting serve` on a temporary SQLite file, then on a fresh
PostgreSQL database that is dropped afterwards) this starts the server as a subprocess and a
callback receiver in a separate process, creates meetings on production apps whose parties are
all busy numbers (…0486: callout, disconnect and CDR within ~0.1 s of dialling), and measures
three phases:

* **live**: events are pushed while they are being produced. The receiver's arrival times are
  joined by event id with `events.created_at` (Unix float, written in the transaction of the
  state change), so the delay is exact although the bodies' timestamps have 1 s resolution.
  By default the server produces events faster than anything can push them (a backlog builds
  up and the delay measures it); `--live-rate` paces production to measure the delay of a
  dispatcher that is not overloaded.
* **backlog**: the app's callback URL is moved to a new path and all the live phase's (already
  delivered) events are made pending again in one statement, the update that `telemeeting
  callbacks redeliver` makes (and, like it, a wake-up on PostgreSQL; on SQLite the dispatcher
  finds the backlog at its next look, within 0.5 s, which the drain time includes and the rate
  does not). The drain rate is then the dispatcher's own capacity, whatever the rate the
  server can produce events at, and the delay is counted from that requeue.
* **fair: other app**: one app's callback URL never answers (same receiver host, another
  path) while it has a meeting of 100 busy parties to push; then another app's events are
  produced at 50/s and their delay from each state change is measured, as in the live phase.

Each phase checks that nothing is missing (no event of the app left pending, every stored event
received), nothing is duplicated, the header seq matches the stored one, and every leg's (and
meeting's) pushes arrived in seq order. The **baselines** are the same receiver hit directly,
bodies of the same size and signed headers: with the dispatcher's own HTTP client and its bound
for one app in flight (the reference of the ×base ratio), and with httpx, as the dispatcher sent
before (one pool of 64 connections), and as 64 single-connection clients. Every process started
here is stopped again, on Ctrl-C too; all traffic is 127.0.0.1. The database is read and the
backlog requeued through the store itself (`Database`), not through the server.

    python bench/callback_throughput.py                   # both targets, under 2 minutes
    python bench/callback_throughput.py --json            # machine-readable results on stdout
    python bench/callback_throughput.py --targets sqlite --events 500
    python bench/callback_throughput.py --live-rate 300 --skip-backlog   # delay, not saturated

The receiver is this file again, run with `--receiver PORT` (internal).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import signal
import statistics
import sys
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # bench/ is not a package: found through sys.path above
    HOST,
    REQUEST_TIMEOUT,
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
    print_json,
    print_table_out,
    process_cpu_seconds,
    run_interruptible,
    served,
    skip_reason,
    spawned,
    system_cpu_ticks,
    tail,
    target_database,
    wait_until_listening,
)
from telemeeting.callbacks.dispatcher import PER_APP_IN_FLIGHT, USER_AGENT
from telemeeting.callbacks.http import PushClient
from telemeeting.store.connection import as_dict
from telemeeting.store.sql import Statement
from telemeeting.store.unit_of_work import PUSHES_CHANNEL, Database
from telemeeting.wire import callbacks
from telemeeting.wire.envelope import CONTENT_TYPE

TARGETS = ("sqlite", "postgres")
POLL_SECONDS = 0.1
#: Pushes in flight in the baselines: the dispatcher's bound for one app (all pushes here go to
#: one app), and the one pool of 64 the dispatcher shared before (httpx).
CONCURRENCY = PER_APP_IN_FLIGHT
HTTPX_CONCURRENCY = 64
#: The fairness phase: the stuck app's meeting, and the other app's meetings (1 busy party each)
#: and their pace in events/s.
FAIR_HUNG_PARTIES = 100
FAIR_OTHER_MEETINGS = 25
FAIR_OTHER_RATE = 50.0
#: Budget for one target (server start to stop); a run that overruns it is reported, not hung.
TARGET_BUDGET_SECONDS = 150.0


# ---- settings and results -----------------------------------------------------------------------


@dataclass(frozen=True)
class Options(BenchOptions):
    """The command line, parsed once and passed down."""

    events: int
    parties: int
    gen_concurrency: int
    live_rate: float
    drain_timeout: float
    ring_seconds: float
    skip_backlog: bool
    skip_fairness: bool


@dataclass
class Phase:
    """One measured phase of one target (or the baseline); also the shape of `--json` results."""

    target: str
    phase: str
    events: int = 0
    received: int = 0
    rate: float = 0.0
    window_s: float = 0.0
    produced_rate: float | None = None
    delay_from: str = ""
    delay_p50_ms: float | None = None
    delay_p99_ms: float | None = None
    delay_max_ms: float | None = None
    drain_s: float | None = None
    duplicates: int = 0
    missing: int = 0
    left_pending: int = 0
    dead: int = 0
    unknown: int = 0
    seq_mismatches: int = 0
    order_violations: int = 0
    streams: int = 0
    extra_attempts: int = 0
    body_bytes_mean: float = 0.0
    server_cpu_pct: float | None = None
    receiver_cpu_pct: float | None = None
    sender_cpu_pct: float | None = None
    machine_cpu_pct: float | None = None
    ratio: float | None = None
    hung_in_flight: int | None = None  # fairness: the stuck app's pushes on the wire
    skipped: str = ""

    @property
    def clean(self) -> bool:
        return not (
            self.skipped
            or self.duplicates
            or self.missing
            or self.left_pending
            or self.dead
            or self.unknown
            or self.seq_mismatches
            or self.order_violations
        )


# ---- the receiver process -----------------------------------------------------------------------


OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class ReceiverState:
    """What the receiver acknowledged, in arrival order; the benchmark takes it per phase."""

    def __init__(self) -> None:
        # (arrival time.time(), event id, seq, kind, stream, body bytes)
        self.records: list[tuple[float, str, int, str, str, int]] = []
        self.hung = 0  # requests to /hang/…, never answered


def _json_response(payload: object) -> bytes:
    body = json.dumps(payload).encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def _serve_connection(
    state: ReceiverState, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """HTTP/1.1 keep-alive with Content-Length bodies: all that httpx sends, and cheap to parse.

    A bare asyncio parser rather than a framework keeps the receiver far from being the limit.
    """
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    key, value = line.split(":", 1)
                    headers[key.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            body = await reader.readexactly(length) if length else b""
            arrived = time.time()
            path, _, query = target.partition("?")
            parts = path.strip("/").split("/")
            if method == "POST" and parts[0] == "cb" and len(parts) > 1:
                state.records.append(
                    (
                        arrived,
                        headers.get("x-telemeeting-event-id", ""),
                        int(headers.get("x-telemeeting-seq", "0") or 0),
                        query.split("&")[-1],
                        parts[1],
                        len(body),
                    )
                )
                writer.write(OK_RESPONSE)
            elif method == "POST" and parts[0] == "hang":  # never answer: wait for the sender
                state.hung += 1  # to give up and close the connection
                await reader.read()
                break
            elif path == "/_count":
                streams = Counter(record[4] for record in state.records)
                writer.write(_json_response({"streams": streams, "hung": state.hung}))
            elif path == "/_take":  # hand over everything recorded so far, and forget it
                taken, state.records = state.records, []
                writer.write(_json_response(taken))
            else:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            if headers.get("connection", "").lower() == "close":
                break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def receiver_main(port: int) -> None:
    """Serve until SIGTERM (the benchmark's stop) or SIGINT."""
    state = ReceiverState()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_server(
        lambda r, w: _serve_connection(state, r, w), HOST, port, backlog=1024
    )
    async with server:
        await stop.wait()


class ReceiverClient:
    """The benchmark's view of the receiver process: counts, and the records of a phase."""

    def __init__(self, port: int, pid: int) -> None:
        self.port = port
        self.pid = pid

    def url(self, stream: str) -> str:
        return f"http://{HOST}:{self.port}/cb/{stream}"

    def hang_url(self, stream: str) -> str:
        """A callback URL on the same receiver host that never answers."""
        return f"http://{HOST}:{self.port}/hang/{stream}"

    async def counts(self, client: httpx.AsyncClient) -> dict[str, Any]:
        response = await client.get(f"http://{HOST}:{self.port}/_count")
        return dict(response.json())

    async def take(self, client: httpx.AsyncClient) -> list[list[Any]]:
        response = await client.post(f"http://{HOST}:{self.port}/_take")
        return list(response.json())

    async def wait_for(
        self, client: httpx.AsyncClient, stream: str, count: int, deadline: float
    ) -> None:
        """Until `count` pushes of `stream` arrived, or the (monotonic) deadline passes."""
        while time.monotonic() < deadline:
            if (await self.counts(client))["streams"].get(stream, 0) >= count:
                return
            await asyncio.sleep(POLL_SECONDS)


# ---- the database, read from outside the server -------------------------------------------------


EVENT_COLUMNS = "id, meeting_id, leg_id, seq, kind, created_at, delivery, attempts, pending_since"
_STATES = Statement(
    "SELECT delivery, count(*) AS n FROM events WHERE app_id = :a GROUP BY delivery"
)
_ROWS = Statement(f"SELECT {EVENT_COLUMNS} FROM events WHERE app_id = :a")
_REQUEUE = Statement(
    "UPDATE events SET delivery = 'pending', next_attempt_at = :now, pending_since = :now, "
    "last_error = '' WHERE app_id = :a AND delivery = 'delivered'"
)


class EventsTable:
    """The `events` table read from outside the server, through the store itself (readers
    take no lock on SQLite)."""

    def __init__(self, db_url: str) -> None:
        self._db = Database(db_url, pool_size=2)

    async def states(self, appid: str) -> Counter[str]:
        async with self._db.reader() as uow:
            rows = await uow.connection.fetch(_STATES, {"a": appid})
            return Counter({str(row["delivery"]): int(row["n"]) for row in rows})

    async def rows(self, appid: str) -> list[dict[str, Any]]:
        async with self._db.reader() as uow:
            return [as_dict(row) for row in await uow.connection.fetch(_ROWS, {"a": appid})]

    async def wait_settled(self, appid: str, expected: int, deadline: float) -> Counter[str]:
        """Until `expected` events exist for the app and none is pending (or the deadline)."""
        states = await self.states(appid)
        while time.monotonic() < deadline:
            if sum(states.values()) >= expected and not states.get("pending"):
                break
            await asyncio.sleep(POLL_SECONDS * 2)
            states = await self.states(appid)
        return states

    async def wait_stored(self, appid: str, expected: int, deadline: float) -> None:
        """Until `expected` events exist for the app, in any state (or the deadline)."""
        while sum((await self.states(appid)).values()) < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"fewer than {expected} events stored for app {appid}")
            await asyncio.sleep(POLL_SECONDS)

    async def requeue(self, appid: str) -> int:
        """Make every delivered event of the app pending again, due now, in one statement.

        The values `OutboxRepository.redeliver` sets (it takes only dead events, or one id), in
        one transaction, so that the whole backlog appears at once; like it, this wakes the
        dispatcher on PostgreSQL (NOTIFY). On SQLite no other process can wake it: it finds
        the backlog at its next look (at most `dispatcher.IDLE_POLL_SECONDS`), which the drain
        time includes and the rate does not.
        """
        async with self._db.unit_of_work() as uow:
            count = await uow.connection.execute(_REQUEUE, {"a": appid, "now": time.time()})
            await uow.notify(PUSHES_CHANNEL)
            return count

    async def close(self) -> None:
        await self._db.dispose()


# ---- producing events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tenant:
    base_url: str
    sid: str
    token: str


def busy_phone(index: int) -> str:
    """A distinct number ending in 0486: the simulated carrier answers busy (spec §8)."""
    return f"1{index % 10**6:06d}0486"


def events_per_meeting(parties: int) -> int:
    """MeetingState start, then callout, disconnect and CDR per busy party (no end: nobody
    ever joined, so the meeting stays active)."""
    return 1 + 3 * parties


async def create_meetings(
    tenant: Tenant,
    appid: str,
    meetings: int,
    parties: int,
    concurrency: int,
    offset: int,
    rate: float = 0.0,
) -> None:
    """`meetings` createMeeting requests, each dialling `parties` busy numbers at once; with
    `rate` > 0 (events/s) meeting m is not started before m × its share of a second."""
    interval = events_per_meeting(parties) / rate if rate > 0 else 0.0
    start = time.monotonic()

    async def create(client: httpx.AsyncClient, m: int) -> None:
        await asyncio.sleep(max(0.0, start + m * interval - time.monotonic()))
        base = offset + m * parties
        body = {
            "appid": appid,
            "meetingname": "cb-bench",
            "parties": [{"name": f"p{j}", "phone": busy_phone(base + j)} for j in range(parties)],
        }
        await create_meeting(client, tenant.base_url, tenant.sid, tenant.token, body)

    await fan_out(meetings, concurrency, create)


# ---- CPU accounting ------------------------------------------------------------------------------


class CpuWindow:
    """CPU of the server, the receiver, this process and the whole machine between two marks."""

    def __init__(self, server_pid: int | None, receiver_pid: int) -> None:
        self._pids = {"server": server_pid, "receiver": receiver_pid}
        self._start = self._sample()

    def _sample(self) -> dict[str, Any]:
        sample: dict[str, Any] = {
            name: process_cpu_seconds(pid) if pid else None for name, pid in self._pids.items()
        }
        sample["sender"] = time.process_time()
        sample["machine"] = system_cpu_ticks()
        sample["at"] = time.monotonic()
        return sample

    def finish(self, phase: Phase) -> None:
        end = self._sample()
        elapsed = max(1e-9, end["at"] - self._start["at"])

        def pct(name: str) -> float | None:
            a, b = self._start[name], end[name]
            return None if a is None or b is None else round(100 * (b - a) / elapsed, 1)

        phase.server_cpu_pct = pct("server")
        phase.receiver_cpu_pct = pct("receiver")
        phase.sender_cpu_pct = pct("sender")
        m0, m1 = self._start["machine"], end["machine"]
        if m0 and m1 and m1[1] > m0[1]:  # 100 % = every core busy
            phase.machine_cpu_pct = round(100 * (m1[0] - m0[0]) / (m1[1] - m0[1]), 1)


# ---- checking and measuring a phase --------------------------------------------------------------


def analyse(
    phase: Phase,
    records: list[list[Any]],
    rows: list[dict[str, Any]],
    stream: str,
    delay_from: str,
) -> None:
    """Join the receiver's records with the stored events by id; fill rate, delays and checks."""
    mine = [r for r in records if r[4] == stream]
    stored = {row["id"]: row for row in rows}
    phase.events = len(stored)
    phase.received = len(mine)
    seen: Counter[str] = Counter(r[1] for r in mine)
    phase.duplicates = sum(n - 1 for n in seen.values() if n > 1)
    phase.unknown = sum(1 for event_id in seen if event_id not in stored)
    phase.missing = sum(1 for event_id in stored if event_id not in seen)
    states = Counter(row["delivery"] for row in rows)
    phase.left_pending = states.get("pending", 0)
    phase.dead = states.get("dead", 0)
    phase.extra_attempts = sum(int(row["attempts"]) for row in rows) - len(rows)
    if mine:
        phase.body_bytes_mean = round(statistics.fmean(r[5] for r in mine), 1)
    arrivals = [r[0] for r in mine]
    if len(arrivals) > 1:
        phase.window_s = round(max(arrivals) - min(arrivals), 3)
        phase.rate = round((len(arrivals) - 1) / max(1e-9, phase.window_s), 1)

    # Order: within each stream (a leg, or the meeting itself) seqs must rise in arrival order.
    last_seq: dict[tuple[str, str | None], int] = {}
    first_seen: set[str] = set()
    delays: list[float] = []
    for arrived, event_id, seq, _kind, _stream, _size in mine:
        row = stored.get(event_id)
        if row is None or event_id in first_seen:
            continue
        first_seen.add(event_id)
        if int(row["seq"]) != int(seq):
            phase.seq_mismatches += 1
        key = (row["meeting_id"], row["leg_id"])
        if key in last_seq and last_seq[key] >= int(row["seq"]):
            phase.order_violations += 1
        last_seq[key] = int(row["seq"])
        origin = row[delay_from]
        if origin is not None:
            delays.append(arrived - float(origin))
    phase.streams = len(last_seq)
    phase.delay_from = delay_from
    if delays:
        delays.sort()
        phase.delay_p50_ms = round(1000 * percentile(delays, 50), 1)
        phase.delay_p99_ms = round(1000 * percentile(delays, 99), 1)
        phase.delay_max_ms = round(1000 * delays[-1], 1)
    created = [float(row["created_at"]) for row in rows]
    if delay_from == "created_at" and len(created) > 1 and max(created) > min(created):
        phase.produced_rate = round((len(created) - 1) / (max(created) - min(created)), 1)
    if delay_from == "pending_since" and arrivals:
        since = [float(row["pending_since"]) for row in rows if row["pending_since"] is not None]
        if since:
            phase.drain_s = round(max(arrivals) - min(since), 3)


# ---- one target ---------------------------------------------------------------------------------


@dataclass
class Running:
    """A started server with its tenant, and the receiver it pushes to."""

    name: str
    db_url: str
    tenant: Tenant
    server_pid: int
    receiver: ReceiverClient
    opts: Options
    offset: int = 0
    phases: list[Phase] = field(default_factory=list)

    def app(self, stream: str, url: str = "") -> str:
        """A production app (online) whose pushes go to the receiver's `stream` (or `url`)."""
        created = cli_json(
            "app",
            "create",
            "--account",
            self.tenant.sid,
            "--env",
            "production",
            "--callback-url",
            url or self.receiver.url(stream),
            db=self.db_url,
        )
        return str(created["appid"])

    async def produce(self, appid: str) -> int:
        """Enough busy-party meetings for about `opts.events` events; how many are expected."""
        meetings = max(1, math.ceil(self.opts.events / events_per_meeting(self.opts.parties)))
        await create_meetings(
            self.tenant,
            appid,
            meetings,
            self.opts.parties,
            self.opts.gen_concurrency,
            self.offset,
            self.opts.live_rate,
        )
        self.offset += meetings * self.opts.parties
        return meetings * events_per_meeting(self.opts.parties)

    async def live(self, client: httpx.AsyncClient, table: EventsTable, appid: str) -> Phase:
        """Push while producing: the delay from each state change to its receipt."""
        stream = f"{self.name}-live"
        phase = Phase(self.name, "live")
        cpu = CpuWindow(self.server_pid, self.receiver.pid)
        began = time.monotonic()
        expected = await self.produce(appid)
        deadline = time.monotonic() + self.opts.drain_timeout
        await self.receiver.wait_for(client, stream, expected, deadline)
        cpu.finish(phase)
        await table.wait_settled(appid, expected, deadline)
        log.print(f"{self.name} live: {expected} events in {time.monotonic() - began:.1f}s")
        analyse(
            phase, await self.receiver.take(client), await table.rows(appid), stream, "created_at"
        )
        phase.missing += max(0, expected - phase.events)  # never even stored
        return phase

    async def backlog(
        self, client: httpx.AsyncClient, table: EventsTable, appid: str, live_stream: str
    ) -> Phase:
        """Requeue all of the live phase's events at once: the drain rate is the dispatcher's
        own capacity, not the rate at which the server produces events."""
        stream = f"{self.name}-backlog"
        cli_json(
            "app", "update", appid, "--callback-url", self.receiver.url(stream), db=self.db_url
        )
        before = {row["id"]: int(row["attempts"]) for row in await table.rows(appid)}
        await self.receiver.take(client)
        phase = Phase(self.name, "backlog")
        cpu = CpuWindow(self.server_pid, self.receiver.pid)
        requeued = await table.requeue(appid)
        deadline = time.monotonic() + self.opts.drain_timeout
        await self.receiver.wait_for(client, stream, requeued, deadline)
        cpu.finish(phase)
        await table.wait_settled(appid, len(before), deadline)
        rows = await table.rows(appid)
        records = await self.receiver.take(client)
        analyse(phase, records, rows, stream, "pending_since")
        phase.missing += len(before) - requeued  # not delivered in the live phase
        phase.extra_attempts = sum(int(r["attempts"]) - before.get(r["id"], 0) - 1 for r in rows)
        phase.unknown += sum(1 for r in records if r[4] == live_stream)  # late or repeated
        log.print(f"{self.name} backlog: {requeued} requeued, drained in {phase.drain_s}s")
        return phase

    async def fairness(self, client: httpx.AsyncClient, table: EventsTable) -> Phase:
        """One app's receiver never answers while it has a meeting of 100 busy parties to
        push (301 pushes, 101 due at once); another app on the same receiver host gets events
        at a modest rate: their delay from each state change to its receipt."""
        hung_start = (await self.receiver.counts(client))["hung"]  # one receiver, all targets
        hung_app = self.app("", self.receiver.hang_url(f"{self.name}-hung"))
        hung_events = events_per_meeting(FAIR_HUNG_PARTIES)
        await create_meetings(self.tenant, hung_app, 1, FAIR_HUNG_PARTIES, 1, self.offset)
        self.offset += FAIR_HUNG_PARTIES
        await table.wait_stored(hung_app, hung_events, time.monotonic() + 20)
        await asyncio.sleep(1.0)  # its pushes are on the wire, all it may have
        hung_before = (await self.receiver.counts(client))["hung"] - hung_start
        stream = f"{self.name}-fair"
        appid = self.app(stream)
        phase = Phase(self.name, "fair: other app")
        cpu = CpuWindow(self.server_pid, self.receiver.pid)
        meetings = FAIR_OTHER_MEETINGS
        await create_meetings(self.tenant, appid, meetings, 1, 2, self.offset, rate=FAIR_OTHER_RATE)
        self.offset += meetings
        expected = meetings * events_per_meeting(1)
        deadline = time.monotonic() + self.opts.drain_timeout
        await self.receiver.wait_for(client, stream, expected, deadline)
        cpu.finish(phase)
        await table.wait_settled(appid, expected, deadline)
        analyse(
            phase, await self.receiver.take(client), await table.rows(appid), stream, "created_at"
        )
        phase.missing += max(0, expected - phase.events)
        phase.hung_in_flight = hung_before
        log.print(
            f"{self.name} fairness: {hung_before} pushes hanging for the stuck app, "
            f"the other app's delay p99 {phase.delay_p99_ms} ms"
        )
        return phase

    async def run(self) -> list[Phase]:
        table = EventsTable(self.db_url)
        try:
            async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT) as client:
                await self.receiver.take(client)
                live_stream = f"{self.name}-live"
                appid = self.app(live_stream)
                self.phases.append(await self.live(client, table, appid))
                if not self.opts.skip_backlog:
                    self.phases.append(await self.backlog(client, table, appid, live_stream))
                if not self.opts.skip_fairness:
                    self.phases.append(await self.fairness(client, table))
        finally:
            await table.close()
        return self.phases


def bench_server(
    name: str, db_url: str, receiver: ReceiverClient, opts: Options, workdir: Path
) -> list[Phase]:
    """The real `telemeeting serve` on `db_url`; its production listener gets the requests."""
    account = cli_json("account", "create", "--name", "cb-bench", db=db_url)
    log_path = workdir / f"{name}.log"
    with served(db_url, opts.ring_seconds, log_path, sandbox=False) as (proc, url):
        tenant = Tenant(url, account["sid"], account["auth_token"])
        running = Running(name, db_url, tenant, proc.pid, receiver, opts)
        return asyncio.run(asyncio.wait_for(running.run(), TARGET_BUDGET_SECONDS))


def run_target(name: str, receiver: ReceiverClient, opts: Options, workdir: Path) -> list[Phase]:
    try:
        with target_database(name, opts.pg_admin_dsn, workdir) as url:
            return bench_server(name, url, receiver, opts, workdir)
    except Exception as exc:  # one broken target must not hide the others
        return [Phase(name, "-", skipped=skip_reason(name, exc))]


# ---- the baseline -------------------------------------------------------------------------------


#: The baselines: (phase name, sender, pushes in flight). The first is the ratio's reference.
BASELINES = (
    ("push client", "push", CONCURRENCY),
    ("httpx 1 pool of 64", "httpx-shared", HTTPX_CONCURRENCY),
    ("httpx 64 clients", "httpx-split", HTTPX_CONCURRENCY),
)


async def baseline(
    receiver: ReceiverClient, count: int, body_size: int, deadline: float, kind: str
) -> Phase:
    """The receiver hit directly with the same headers (signed) and body size, measured at the
    receiver like the rest.

    `push`: the dispatcher's own HTTP client (callbacks/http.py) with the dispatcher's bound for
    one app in flight, the reference for the ratio: what the dispatcher could reach if claiming,
    signing and recording cost nothing. `httpx-shared`: one httpx client with one pool of 64
    connections, as the dispatcher sent before (httpcore scans its whole pool on every request).
    `httpx-split`: one single-connection httpx client per worker, 64 of them.
    """
    name, _, in_flight = next(b for b in BASELINES if b[1] == kind)
    stream = f"baseline-{kind}"
    url = callbacks.push_url(receiver.url(stream), "CallState")
    body = (b'{"pad":"' + b"x" * max(0, body_size - 10) + b'"}')[: max(body_size, 2)]
    phase = Phase("receiver", name)
    remaining = iter(range(count))

    def headers(n: int) -> dict[str, str]:
        timestamp = str(int(time.time()))
        return {
            "Content-Type": CONTENT_TYPE,
            callbacks.HEADER_EVENT_ID: uuid.uuid4().hex,
            callbacks.HEADER_SEQ: str(n + 1),
            callbacks.HEADER_TIMESTAMP: timestamp,
            callbacks.HEADER_SIGNATURE: callbacks.signature("secret", timestamp, body),
        }

    async def httpx_worker(client: httpx.AsyncClient) -> None:
        for n in remaining:
            if time.monotonic() > deadline:
                return
            response = await client.post(url, content=body, headers=headers(n))
            response.raise_for_status()

    async def push_worker(client: PushClient) -> None:
        for n in remaining:
            if time.monotonic() > deadline:
                return
            status = await client.post(url, body, headers(n))
            if status != 200:
                raise RuntimeError(f"baseline push answered {status}")

    async with contextlib.AsyncExitStack() as stack:
        control = await stack.enter_async_context(httpx.AsyncClient(timeout=REQUEST_TIMEOUT))
        await receiver.take(control)
        if kind == "push":
            push = PushClient(USER_AGENT, 10.0)
            stack.push_async_callback(push.aclose)
            cpu = CpuWindow(None, receiver.pid)
            await asyncio.gather(*(push_worker(push) for _ in range(in_flight)))
        else:
            pool = in_flight if kind == "httpx-shared" else 1
            limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
            clients = [
                await stack.enter_async_context(
                    httpx.AsyncClient(timeout=10.0, limits=limits, follow_redirects=False)
                )
                for _ in range(1 if kind == "httpx-shared" else in_flight)
            ]
            cpu = CpuWindow(None, receiver.pid)
            await asyncio.gather(
                *(httpx_worker(clients[k % len(clients)]) for k in range(in_flight))
            )
        cpu.finish(phase)
        records = await receiver.take(control)
    mine = [r for r in records if r[4] == stream]
    ids = {r[1] for r in mine}
    phase.events = count
    phase.received = len(mine)
    phase.missing = count - len(ids)
    phase.duplicates = len(mine) - len(ids)
    phase.body_bytes_mean = round(statistics.fmean(r[5] for r in mine), 1) if mine else 0.0
    if len(mine) > 1:
        phase.window_s = round(mine[-1][0] - mine[0][0], 3)
        phase.rate = round((len(mine) - 1) / max(1e-9, phase.window_s), 1)
    return phase


# ---- reporting ----------------------------------------------------------------------------------


def add_ratios(phases: list[Phase]) -> None:
    base = next((p for p in phases if p.phase == BASELINES[0][0] and p.rate), None)
    if base is None:
        return
    for p in phases:
        if not p.skipped and p.rate:
            p.ratio = round(p.rate / base.rate, 3)


def print_table(phases: list[Phase], opts: Options) -> None:
    table = Table(
        title=(
            f"Callback delivery: ~{opts.events} events per phase, busy parties "
            f"({opts.parties} per meeting), receiver on 127.0.0.1"
        )
    )
    headers = (
        "target",
        "phase",
        "events",
        "recv'd",
        "events/s",
        "×base",
        "made/s",
        "delay p50 ms",
        "p99 ms",
        "max ms",
        "drain s",
        "checks",
        "server CPU",
        "recv CPU",
        "sender CPU",
        "machine CPU",
    )
    for header in headers:
        table.add_column(header, justify="left" if header in ("target", "phase") else "right")
    for p in phases:
        if p.skipped:
            table.add_row(p.target, p.phase, f"skipped: {p.skipped}", *[""] * (len(headers) - 3))
            continue
        problems = [
            f"{label} {n}"
            for label, n in (
                ("dup", p.duplicates),
                ("missing", p.missing),
                ("pending", p.left_pending),
                ("dead", p.dead),
                ("unknown", p.unknown),
                ("seq≠", p.seq_mismatches),
                ("order", p.order_violations),
            )
            if n
        ]
        if p.extra_attempts:  # not a failure (delivery is at least once), but worth seeing
            problems.append(f"retries {p.extra_attempts}")
        table.add_row(
            p.target,
            p.phase,
            str(p.events),
            str(p.received),
            f"{p.rate:.0f}",
            fmt(p.ratio, ".3f"),
            fmt(p.produced_rate, ".0f"),
            fmt(p.delay_p50_ms, ".0f"),
            fmt(p.delay_p99_ms, ".0f"),
            fmt(p.delay_max_ms, ".0f"),
            fmt(p.drain_s, ".1f"),
            ", ".join(problems) or "ok",
            fmt(p.server_cpu_pct, ".0f", "%"),
            fmt(p.receiver_cpu_pct, ".0f", "%"),
            fmt(p.sender_cpu_pct, ".0f", "%"),
            fmt(p.machine_cpu_pct, ".0f", "%"),
        )
    print_table_out(table, 190)


# ---- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> Options | int:
    parser = bench_parser(__doc__, TARGETS)
    parser.add_argument("--events", type=int, default=3000, help="events per phase (about)")
    parser.add_argument("--parties", type=int, default=20, help="busy parties per meeting (≤ 100)")
    parser.add_argument(
        "--gen-concurrency", type=int, default=4, help="createMeeting requests in flight"
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=45.0, help="max seconds to wait for deliveries"
    )
    parser.add_argument(
        "--ring-seconds", type=float, default=0.05, help="TELEMEETING_SIM_RING_SECONDS"
    )
    parser.add_argument(
        "--live-rate",
        type=float,
        default=0.0,
        help="pace the live phase to about this many events/s (0: as fast as the server takes)",
    )
    parser.add_argument("--skip-backlog", action="store_true", help="no backlog phase")
    parser.add_argument("--skip-fairness", action="store_true", help="no fairness phase")
    add_closing_arguments(parser)
    parser.add_argument("--receiver", type=int, metavar="PORT", help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.receiver:
        return int(ns.receiver)
    common = common_options(parser, ns, TARGETS)
    if not 1 <= ns.parties <= 100:
        parser.error("--parties must be 1..100 (the default member limit)")
    if not 10 <= ns.events <= 20000 or ns.gen_concurrency < 1 or ns.drain_timeout <= 0:
        parser.error("--events must be 10..20000; --gen-concurrency, --drain-timeout > 0")
    return Options(
        **common,
        events=ns.events,
        parties=ns.parties,
        gen_concurrency=ns.gen_concurrency,
        live_rate=max(0.0, ns.live_rate),
        drain_timeout=ns.drain_timeout,
        ring_seconds=ns.ring_seconds,
        skip_backlog=ns.skip_backlog,
        skip_fairness=ns.skip_fairness,
    )


def run_all(opts: Options, workdir: Path) -> list[Phase]:
    """The receiver for the whole run, each target in turn, then the baseline next to them."""
    phases: list[Phase] = []
    port = free_port()
    args = [sys.executable, str(Path(__file__).resolve()), "--receiver", str(port)]
    log_path = workdir / "receiver.log"
    with ExitStack() as stack:
        proc = stack.enter_context(spawned(args, log_path))
        wait_until_listening(proc, port, log_path)
        receiver = ReceiverClient(port, proc.pid)
        for name in opts.targets:
            phases.extend(run_target(name, receiver, opts, workdir))
        sizes = [p.body_bytes_mean for p in phases if p.body_bytes_mean]
        size = round(statistics.fmean(sizes)) if sizes else 300
        count = max(2 * opts.events, max((p.received for p in phases), default=0))
        for _name, kind, _in_flight in BASELINES:
            deadline = time.monotonic() + opts.drain_timeout
            phases.append(asyncio.run(baseline(receiver, count, size, deadline, kind)))
        if proc.poll() is not None:
            raise RuntimeError(f"receiver died:\n{tail(log_path)}")
    return phases


def main(argv: list[str] | None = None) -> int:
    parsed = parse_args(argv)
    if isinstance(parsed, int):
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(receiver_main(parsed))
        return 0
    opts = parsed
    host = machine()  # the load average before we add ours tells whether others share the CPU
    phases = run_interruptible("tm-cb-bench-", lambda workdir: run_all(opts, workdir))
    if phases is None:
        return 130
    add_ratios(phases)
    host["loadavg_after"] = load_average()
    if opts.as_json:
        print_json(host, opts, phases)
    else:
        print_table(phases, opts)
        after = ", ".join(f"{x:.2f}" for x in host["loadavg_after"])
        log.print(
            f"{describe_machine(host)}; after: {after}. "
            "Delay: live from events.created_at, backlog from the requeue."
        )
    return 0 if all(p.clean for p in phases) else 1


if __name__ == "__main__":
    sys.exit(main())
