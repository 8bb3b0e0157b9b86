"""What PostgreSQL did between two moments of a bench run: WAL written (bytes, records, full-page
images), checkpoints and their write time, buffers written by backends, the bench database's
cache misses, dead tuples and autovacuum runs.

The soak's PostgreSQL latency rose from the first checkpoint on; these counters, sampled at each
row's boundary beside the latency, are what tells a checkpoint's full-page writes from a working
set outgrowing shared_buffers or autovacuum on hot tables. WAL and checkpoint counters are the
instance's (other databases on it add to them); cache, dead tuples and autovacuum are the bench
database's own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, replace

#: The instance's WAL position, WAL statistics and checkpointer/bgwriter counters (PostgreSQL 14+;
#: 17 moved checkpoints to pg_stat_checkpointer, read below when pg_stat_bgwriter lacks them).
_INSTANCE = """
SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS lsn,
       w.wal_records, w.wal_fpi, w.wal_bytes::bigint AS wal_bytes,
       w.wal_sync, w.wal_sync_time::bigint AS wal_sync_ms,
       d.blks_read, d.blks_hit, d.xact_commit
FROM pg_stat_wal w, pg_stat_database d WHERE d.datname = $1
"""
_BGWRITER_15 = """
SELECT checkpoints_timed + checkpoints_req AS checkpoints,
       (checkpoint_write_time + checkpoint_sync_time)::bigint AS checkpoint_ms,
       buffers_checkpoint, buffers_backend
FROM pg_stat_bgwriter
"""
_CHECKPOINTER_17 = """
SELECT num_timed + num_requested AS checkpoints,
       (write_time + sync_time)::bigint AS checkpoint_ms,
       buffers_written AS buffers_checkpoint, 0::bigint AS buffers_backend
FROM pg_stat_checkpointer
"""
#: The bench database's own tables (run on a connection to it).
_TABLES = """
SELECT coalesce(sum(n_dead_tup), 0)::bigint AS dead,
       coalesce(sum(n_live_tup), 0)::bigint AS live,
       coalesce(sum(autovacuum_count), 0)::bigint AS autovacuums,
       coalesce(sum(autoanalyze_count), 0)::bigint AS autoanalyzes
FROM pg_stat_user_tables
"""
_SIZES = """
SELECT relname, pg_total_relation_size(relid)::bigint AS bytes, n_dead_tup, n_live_tup
FROM pg_stat_user_tables ORDER BY bytes DESC LIMIT 8
"""


@dataclass(frozen=True)
class PgCounters:
    """Cumulative counters at one moment."""

    lsn: int
    wal_records: int
    wal_fpi: int
    wal_bytes: int
    wal_syncs: int
    #: Milliseconds in WAL fsyncs (counted by sessions with track_wal_io_timing on: `timed()`).
    wal_sync_ms: int
    blks_read: int
    blks_hit: int
    commits: int
    checkpoints: int
    checkpoint_ms: int
    buffers_checkpoint: int
    buffers_backend: int
    dead_tuples: int
    live_tuples: int
    autovacuums: int


@dataclass(frozen=True)
class PgActivity:
    """One interval's deltas (dead and live tuples: the value at its end)."""

    wal_mib: float
    wal_records: int
    fpi: int
    #: Full-page images' share of the WAL records.
    fpi_pct: float
    #: The WAL's fsyncs (most are commits waiting for theirs) and their mean duration.
    wal_syncs: int
    wal_sync_avg_ms: float
    checkpoints: int
    checkpoint_s: float
    buffers_checkpoint: int
    buffers_backend: int
    #: The bench database's block reads that missed shared_buffers, per cent of block accesses.
    cache_miss_pct: float
    commits: int
    dead_tuples: int
    live_tuples: int
    autovacuums: int
    #: The bench database's sessions waiting for a lock (a row held by another transaction),
    #: sampled twice a second: the mean, the most at once, and what most of them ran.
    lock_waiters_avg: float = 0.0
    lock_waiters_max: int = 0
    lock_wait_top: str = ""


def delta(before: PgCounters, after: PgCounters) -> PgActivity:
    records = after.wal_records - before.wal_records
    fpi = after.wal_fpi - before.wal_fpi
    read = after.blks_read - before.blks_read
    hit = after.blks_hit - before.blks_hit
    syncs = after.wal_syncs - before.wal_syncs
    sync_ms = after.wal_sync_ms - before.wal_sync_ms
    return PgActivity(
        wal_mib=round((after.lsn - before.lsn) / 2**20, 1),
        wal_records=records,
        fpi=fpi,
        fpi_pct=round(fpi / records * 100, 1) if records else 0.0,
        wal_syncs=syncs,
        wal_sync_avg_ms=round(sync_ms / syncs, 2) if syncs else 0.0,
        checkpoints=after.checkpoints - before.checkpoints,
        checkpoint_s=round((after.checkpoint_ms - before.checkpoint_ms) / 1000, 1),
        buffers_checkpoint=after.buffers_checkpoint - before.buffers_checkpoint,
        buffers_backend=after.buffers_backend - before.buffers_backend,
        cache_miss_pct=round(read / (read + hit) * 100, 2) if read + hit else 0.0,
        commits=after.commits - before.commits,
        dead_tuples=after.dead_tuples,
        live_tuples=after.live_tuples,
        autovacuums=after.autovacuums - before.autovacuums,
    )


_WAITING = """
SELECT left(query, 60) AS query FROM pg_stat_activity
WHERE datname = $1 AND wait_event_type = 'Lock'
"""


@dataclass(frozen=True)
class LockWaits:
    avg: float
    max: int
    top: str


class LockWatch:
    """Counts the bench database's sessions waiting for locks, every `period` seconds, on one
    connection of its own: a queue behind one hot row shows here, not in the counters above."""

    def __init__(self, admin_dsn: str, db_url: str, period: float = 0.5) -> None:
        self._admin = admin_dsn
        self._name = db_url.rsplit("/", 1)[1]
        self._period = period
        self._counts: list[int] = []
        self._queries: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        import asyncpg

        connection = await asyncpg.connect(self._admin, timeout=5)
        self._task = asyncio.create_task(self._run(connection))

    async def _run(self, connection: object) -> None:
        try:
            while True:
                rows = await connection.fetch(_WAITING, self._name)  # type: ignore[attr-defined]
                self._counts.append(len(rows))
                self._queries.update(str(r["query"]) for r in rows)
                await asyncio.sleep(self._period)
        finally:
            await connection.close()  # type: ignore[attr-defined]

    def take(self) -> LockWaits:
        """What was seen since the last take."""
        counts, queries = self._counts, self._queries
        self._counts, self._queries = [], Counter()
        top = queries.most_common(1)[0][0] if queries else ""
        return LockWaits(
            round(sum(counts) / len(counts), 1) if counts else 0.0, max(counts, default=0), top
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def with_waits(activity: PgActivity, waits: LockWaits | None) -> PgActivity:
    if waits is None:
        return activity
    return replace(
        activity,
        lock_waiters_avg=waits.avg,
        lock_waiters_max=waits.max,
        lock_wait_top=waits.top,
    )


def asyncpg_dsn(url: str) -> str:
    """An asyncpg DSN from the server's SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


class PgSampler:
    """Reads the counters on short connections (the admin one and one to the bench database)."""

    def __init__(self, admin_dsn: str, db_url: str) -> None:
        self._admin = admin_dsn
        self.db_url = db_url
        self._db = asyncpg_dsn(db_url)
        self._name = db_url.rsplit("/", 1)[1]

    async def timed(self) -> None:
        """Time the WAL's writes and fsyncs in the bench database's sessions (a superuser's
        per-database setting, before the server connects; the instance's own setting is not
        touched). Costs a clock read per WAL write."""
        import asyncpg

        admin = await asyncpg.connect(self._admin, timeout=5)
        try:
            await admin.execute(f'ALTER DATABASE "{self._name}" SET track_wal_io_timing = on')
        finally:
            await admin.close()

    async def counters(self) -> PgCounters:
        import asyncpg

        admin = await asyncpg.connect(self._admin, timeout=5)
        try:
            inst = await admin.fetchrow(_INSTANCE, self._name)
            try:
                ckpt = await admin.fetchrow(_BGWRITER_15)
            except asyncpg.UndefinedColumnError:
                ckpt = await admin.fetchrow(_CHECKPOINTER_17)
        finally:
            await admin.close()
        own = await asyncpg.connect(self._db, timeout=5)
        try:
            tables = await own.fetchrow(_TABLES)
        finally:
            await own.close()
        assert inst is not None and ckpt is not None and tables is not None
        return PgCounters(
            lsn=int(inst["lsn"]),
            wal_records=int(inst["wal_records"]),
            wal_fpi=int(inst["wal_fpi"]),
            wal_bytes=int(inst["wal_bytes"]),
            wal_syncs=int(inst["wal_sync"]),
            wal_sync_ms=int(inst["wal_sync_ms"]),
            blks_read=int(inst["blks_read"]),
            blks_hit=int(inst["blks_hit"]),
            commits=int(inst["xact_commit"]),
            checkpoints=int(ckpt["checkpoints"]),
            checkpoint_ms=int(ckpt["checkpoint_ms"]),
            buffers_checkpoint=int(ckpt["buffers_checkpoint"]),
            buffers_backend=int(ckpt["buffers_backend"]),
            dead_tuples=int(tables["dead"]),
            live_tuples=int(tables["live"]),
            autovacuums=int(tables["autovacuums"]),
        )

    async def largest_tables(self) -> list[dict[str, float | int | str]]:
        """The bench database's largest tables (with their indexes) at the end of a run."""
        import asyncpg

        own = await asyncpg.connect(self._db, timeout=5)
        try:
            rows = await own.fetch(_SIZES)
        finally:
            await own.close()
        return [
            {
                "table": str(r["relname"]),
                "mib": round(int(r["bytes"]) / 2**20, 1),
                "live": int(r["n_live_tup"]),
                "dead": int(r["n_dead_tup"]),
            }
            for r in rows
        ]
