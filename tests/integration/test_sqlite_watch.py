"""SQLite's cross-process wake-up (store/sqlite_watch.py) on a real file: a commit by another
connection (another process) wakes the listeners within the poll, this process's own commits
do not (each wake-up would send the media and dispatcher roles into a write transaction of
their own, competing with other processes' writers for nothing)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from telemeeting.service import admin
from telemeeting.store.unit_of_work import ORDERS_CHANNEL
from tests.servers import database_url, migrated_database

QUIET = 0.3  # fifteen polls


async def test_another_connections_commit_wakes_and_our_own_does_not(tmp_path: Path) -> None:
    url = database_url("sqlite", tmp_path)
    async with migrated_database(url) as here, migrated_database(url) as elsewhere:
        woken = asyncio.Event()
        await here.listen(ORDERS_CHANNEL, woken.set)
        await asyncio.sleep(QUIET)  # the watcher has read its starting point
        await admin.create_account(here)  # a commit of this process's writer
        await asyncio.sleep(QUIET)
        assert not woken.is_set()
        await admin.create_account(elsewhere)  # another writer: another process
        await asyncio.wait_for(woken.wait(), 2.0)
