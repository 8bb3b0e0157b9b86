"""The media role: carries out the carrier orders of the meetings this node owns, records what
the carrier reports, and takes over the meetings of media nodes whose lease ran out.

Orders are claimed from the database (written there by whichever API process took the request),
woken in-process after a local commit and by LISTEN/NOTIFY from other processes on PostgreSQL,
with a slow poll as the safety net. One node carries out its orders in the order they were
written, so a hang-up never overtakes the dial it follows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from telemeeting.domain.model import EndReason
from telemeeting.service.calls import CallRecords
from telemeeting.service.speakers import SpeakerEvents
from telemeeting.store.unit_of_work import ORDERS_CHANNEL, Database
from telemeeting.telephony.driver import (
    DriverRouter,
    HomeMoved,
    LegReport,
    Progress,
    Report,
    SpeakersReport,
)
from telemeeting.telephony.orders import DialOrder, Order, UnknownOrder, carry_out, decode

log = structlog.get_logger(__name__)

#: Orders claimed per transaction.
CLAIM_BATCH = 200
#: Seconds between looks at the orders table when nothing woke the node.
IDLE_POLL_SECONDS = 1.0
#: At most this many queued carrier reports are recorded in one go.
REPORT_BATCH = 500
#: Pauses between tries of recording a meeting's reports after a database error.
REPORT_RETRY_DELAYS = (0.2, 1.0, 5.0)
#: How long a stopping node waits for queued carrier reports to be recorded.
STOP_GRACE_SECONDS = 5.0


class MediaRole:
    def __init__(
        self,
        db: Database,
        node_id: str,
        driver: DriverRouter,
        records: CallRecords,
        clock: Callable[[], float],
        speakers: SpeakerEvents | None = None,
    ) -> None:
        self._db = db
        self.node_id = node_id
        #: Speaker events (issue 14): recorded apart from leg reports, never delaying them.
        self._speakers = speakers
        self._speaker_reports: asyncio.Queue[SpeakersReport] = asyncio.Queue()
        self.driver = driver
        self._records = records
        self._clock = clock
        self._wake = asyncio.Event()
        self._reports: asyncio.Queue[LegReport] = asyncio.Queue()
        #: Meetings whose home media process died (issue 16): their recording moves.
        self._moved: asyncio.Queue[HomeMoved] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        driver.attach(self.on_report)

    def wake(self) -> None:
        """Orders may be waiting (called after a local commit, or by a NOTIFY)."""
        self._wake.set()

    async def start(self) -> None:
        """Acquire the carrier (errors surface here), end the calls a previous run of this node
        left behind, then start carrying out orders."""
        await self.driver.start()
        await self._records.end_lost_calls(self.node_id)
        await self._db.listen(ORDERS_CHANNEL, self.wake)
        self._tasks.append(asyncio.create_task(self._carry_out_orders(), name="orders"))
        self._tasks.append(asyncio.create_task(self._record_reports(), name="reports"))
        self._tasks.append(asyncio.create_task(self._record_speakers(), name="speakers"))
        self._tasks.append(asyncio.create_task(self._move_homes(), name="home-moves"))

    async def stop(self) -> None:
        with contextlib.suppress(TimeoutError):  # what the carrier already said is recorded
            await asyncio.wait_for(self._reports.join(), STOP_GRACE_SECONDS)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.driver.close()

    # ---- orders ---------------------------------------------------------------------------

    async def _carry_out_orders(self) -> None:
        while True:
            self._wake.clear()  # before the claim: a wake during it is not lost
            try:
                async with self._db.unit_of_work() as uow:
                    claimed = await uow.orders.claim(self.node_id, CLAIM_BATCH)
            except Exception:
                log.exception("orders.claim_failed")
                await asyncio.sleep(IDLE_POLL_SECONDS)
                continue
            for stored in claimed:
                try:
                    order = decode(stored.kind, stored.body)
                except UnknownOrder:
                    log.exception("orders.unreadable", order_id=stored.id)
                    continue
                await self._obey(order)
            if len(claimed) < CLAIM_BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_POLL_SECONDS)

    async def _obey(self, order: Order) -> None:
        """Carry out one order; a dial the carrier refused becomes a failed leg."""
        try:
            await carry_out(self.driver.driver(order.env), order)
        except Exception:
            log.exception("telephony.order_failed", order=type(order).__name__)
            if isinstance(order, DialOrder):
                self._reports.put_nowait(
                    LegReport(
                        order.meeting_id,
                        order.leg_id,
                        Progress.ENDED,
                        self._clock(),
                        EndReason.FAILED,
                    )
                )

    # ---- reports --------------------------------------------------------------------------

    async def on_report(self, report: Report) -> None:
        """The carrier's sink: queue the report, never block the carrier."""
        if isinstance(report, SpeakersReport):
            if self._speakers is not None:
                self._speaker_reports.put_nowait(report)
            return
        if isinstance(report, HomeMoved):
            self._moved.put_nowait(report)
            return
        self._reports.put_nowait(report)

    async def _move_homes(self) -> None:
        """A meeting's home process died (the driver reported its lost calls first): once those
        are recorded, so that their CDRs link to the segment that heard them, the recording goes
        on in a new segment on the new home."""
        while True:
            moved = await self._moved.get()
            await self._reports.join()
            try:
                await self._records.home_moved(moved.meeting_id)
            except Exception:  # the meeting goes on unrecorded; the next move may succeed
                log.exception("media.home_move_failed", meeting_id=moved.meeting_id)

    async def _record_speakers(self) -> None:
        while True:
            report = await self._speaker_reports.get()
            try:
                if self._speakers is not None:
                    await self._speakers.record(report)
            except Exception:  # a lost speaker event must not stop the next ones
                log.exception("speakers.failed", meeting_id=report.meeting_id)

    async def _record_reports(self) -> None:
        """Forever: record the queued reports, all of one meeting's in one transaction.

        Under load reports arrive in bursts (every invite brings ringing and answer); loading a
        meeting once for all of its pending reports keeps the cost per report low.
        """
        while True:
            batch = [await self._reports.get()]
            while not self._reports.empty() and len(batch) < REPORT_BATCH:
                batch.append(self._reports.get_nowait())
            by_meeting: dict[str, list[LegReport]] = {}
            for report in batch:
                by_meeting.setdefault(report.meeting_id, []).append(report)
            for meeting_id, reports in by_meeting.items():
                await self._apply_with_retries(meeting_id, reports)
            for _ in batch:
                self._reports.task_done()

    async def reports_recorded(self) -> None:
        """Wait until every report queued so far is recorded."""
        await self._reports.join()

    async def _apply_with_retries(self, meeting_id: str, reports: list[LegReport]) -> None:
        """A passing database error (a dropped connection, a long lock) must not lose what the
        carrier said; a persistent one is logged, and failover ends the legs later."""
        for delay in REPORT_RETRY_DELAYS:
            try:
                await self._records.apply_reports(meeting_id, reports)
                return
            except Exception:
                log.exception("reports.failed", meeting_id=meeting_id, reports=len(reports))
                await asyncio.sleep(delay)
        try:
            await self._records.apply_reports(meeting_id, reports)
        except Exception:  # one meeting's failure must not stop the others' reports
            log.exception("reports.dropped", meeting_id=meeting_id, reports=len(reports))

    # ---- failover -------------------------------------------------------------------------

    async def take_over_stale(self, lease_seconds: float) -> int:
        """Adopt the meetings of media nodes whose heartbeat is older than the lease (ending
        the calls they held, once) and meetings placed while no media node was alive."""
        since = self._clock() - lease_seconds
        async with self._db.reader() as uow:
            stale = [o for o in await uow.nodes.stale_owners(since) if o != self.node_id]
            adopted = {owner: await uow.meetings.ids_with_live_legs(owner) for owner in stale}
            adopted[""] = await uow.orders.orphaned()
        taken = 0
        for owner, meeting_ids in adopted.items():
            for meeting_id in meeting_ids:
                if await self._records.take_over(meeting_id, owner, self.node_id):
                    taken += 1
        if taken:
            self.wake()
        return taken
