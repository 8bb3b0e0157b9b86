"""bench/soak.py end to end, briefly (issue 11 item 10): a few seconds at a low rate against its
own server on SQLite, `--json`. Every request answered "0", rows with latency percentiles, RSS,
open fds and the database's size, so that the 10-minute run in docs/performance.md stays
runnable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(180)


def _soak(*args: str) -> dict[str, Any]:
    """bench/soak.py with these arguments and `--json`; it must succeed. Its report."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench/soak.py"), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_a_short_soak_reports_every_row() -> None:
    report = _soak("--minutes", "0.15", "--interval", "3", "--rate", "20")
    (result,) = report["results"]
    assert result["target"] == "sqlite" and result["rate_rps"] == 20
    rows = result["rows"]
    assert len(rows) == 3
    for row in rows:
        assert row["requests"] == 60
        assert row["ok"] == 60, row["errors"]
        assert row["p50_ms"] is not None and row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
        assert row["rss_mib"] > 10 and row["fds"] > 5 and row["db_mib"] > 0
    assert result["rss_growth_pct"] is not None and result["db_growth_mib_per_min"] >= 0


def test_a_short_postgres_soak_reports_what_postgres_did() -> None:
    """The PostgreSQL columns: WAL, checkpoints, cache, dead tuples, lock waiters, and the
    largest tables at the end (bench/_pg_activity.py)."""
    report = _soak("--targets", "postgres", "--minutes", "0.1", "--interval", "3", "--rate", "20")
    (result,) = report["results"]
    assert result["target"] == "postgres" and len(result["rows"]) == 2
    for row in result["rows"]:
        pg = row["pg"]
        assert row["ok"] == 60, row["errors"]
        assert pg["wal_mib"] > 0 and pg["wal_records"] > 0 and pg["commits"] > 0
        assert pg["wal_syncs"] > 0 and pg["live_tuples"] > 0
        assert 0 <= pg["lock_waiters_avg"] <= pg["lock_waiters_max"]
    tables = {t["table"] for t in result["largest_tables"]}
    assert {"events", "legs", "meetings"} <= tables
