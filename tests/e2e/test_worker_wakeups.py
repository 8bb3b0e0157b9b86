"""`serve --workers 2`: an API worker's carrier orders reach the media role in the parent
process at once, not at the media role's one-second safety poll: on PostgreSQL by the NOTIFY of
the orders table's trigger (migration 0011), on SQLite, which has no NOTIFY, by the watch on the
file's commit counter (store/sqlite_watch.py)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from tests.servers import Api, start_server


def test_an_invite_through_a_worker_is_dialled_at_once(fresh_db: str, tmp_path: Path) -> None:
    server = start_server(fresh_db, tmp_path)
    server.stop()  # the plain start provisions nothing; restart with two API workers
    server = start_server(fresh_db, tmp_path, extra_args=("--workers", "2"))
    try:
        api = Api(server, server.new_tenant())
        meid = api.create_meeting(maxmembers="20")
        delays = []
        for index in range(8):
            phone = f"1380013{index:04d}"
            assert api.invite(meid, phone).code == "0"
            invited = time.monotonic()
            # The simulated carrier reports ringing as soon as it dials: leaving "callout" is
            # the moment the order reached the media role.
            api.wait_for(
                meid,
                lambda meeting, phone=phone: any(
                    m["phone"] == phone and m["state"] != "callout" for m in meeting["members"]
                ),
                timeout=5,
            )
            delays.append(time.monotonic() - invited)
        # Through the one-second poll the delays spread over 0-1 s (median about 0.5 s).
        assert statistics.median(delays) < 0.25, delays
    finally:
        server.stop()
