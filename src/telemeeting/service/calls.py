"""What the carrier reports about calls, and calls lost with a node: recorded on the meeting.

A batch of reports for one meeting is one transaction that loads only the legs it names. Calls
lost with a node (a restart, or a node whose lease ran out) end exactly once each: the meeting
row lock and the domain's "a leg ends once" rule make a second attempt a no-op.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from telemeeting.config import Settings
from telemeeting.domain.model import EndReason, Meeting, MeetingState
from telemeeting.service import meeting_media
from telemeeting.service.changes import ChangeRecorder
from telemeeting.service.directory import Directory
from telemeeting.service.spans import relink_orders
from telemeeting.store.records import App
from telemeeting.store.repositories import LIVE_LEGS, legs_with_ids
from telemeeting.store.unit_of_work import Database, UnitOfWork
from telemeeting.telephony.driver import LegReport, Progress
from telemeeting.telephony.orders import DialOrder, UnknownOrder, decode

log = structlog.get_logger(__name__)


class CallRecords:
    def __init__(
        self,
        db: Database,
        clock: Callable[[], float],
        recorder: ChangeRecorder,
        directory: Directory,
        settings: Settings | None = None,
    ) -> None:
        self._db = db
        #: For in-call media after a take-over (issue 14); None: nothing is sent again.
        self._settings = settings
        self._clock = clock
        self._recorder = recorder
        # The app of a meeting (its callback URL) from the same short-lived cache the API
        # authenticates with: a report batch then costs no statement (round trip) for it.
        self._directory = directory

    async def apply_reports(self, meeting_id: str, reports: list[LegReport]) -> None:
        """Record one meeting's reports in one transaction (touching only the legs named)."""
        async with self._db.unit_of_work() as uow:
            ids = list(dict.fromkeys(report.leg_id for report in reports))
            meeting = await uow.meetings.get(meeting_id, legs_with_ids(ids))
            if meeting is None:
                return
            changed = [_apply_report(meeting, report) for report in reports]
            if not any(changed):
                return
            app = await self._directory.app(meeting.app_id)
            await self._record(uow, meeting, app)

    async def end_lost_calls(self, owner: str) -> int:
        """After `owner` restarted: the calls it had placed died with the old process; end them
        once each. Legs whose dial order it never claimed are still dialled, and a meeting that
        stays active gets its media settings and recording again, as after a take-over (the
        restarted mixer knows nothing of it). Legs other servers carry go on, relinked to the
        restarted home."""
        async with self._db.reader() as uow:
            meeting_ids = await uow.meetings.ids_with_live_legs(owner)
        for meeting_id in meeting_ids:
            async with self._db.unit_of_work() as uow:
                meeting = await self._calls_lost(uow, meeting_id)
                if meeting is not None:
                    # Other servers' links pointed at the old process (issue 16).
                    await relink_orders(uow, meeting_id, owner, owner)
                    await self._resume_media(uow, meeting)
        if meeting_ids:
            log.warning("meetings.recovered", owner=owner, meetings=len(meeting_ids))
        return len(meeting_ids)

    async def take_over(self, meeting_id: str, dead_owner: str, new_owner: str) -> bool:
        """Make `new_owner` the meeting's node if `dead_owner` still owns it (compare and set),
        ending the calls the dead node held; False when someone else took it first."""
        async with self._db.unit_of_work() as uow:
            meeting = await uow.meetings.get(meeting_id, LIVE_LEGS)
            if meeting is None or uow.meetings.owner_of(meeting_id) != dead_owner:
                return False
            await uow.meetings.assign(meeting_id, new_owner)
            await self._calls_lost(uow, meeting_id, meeting, close=False)
            await relink_orders(uow, meeting_id, dead_owner, new_owner)
            await self._resume_media(uow, meeting)
        log.warning("meeting.taken_over", meeting_id=meeting_id, dead=dead_owner, new=new_owner)
        return True

    async def home_moved(self, meeting_id: str) -> None:
        """The media process of this server that recorded the meeting died and another one
        carries it on (issue 16): its settings again, and a running recording goes on there in
        a new segment, as after a take-over."""
        async with self._db.unit_of_work() as uow:
            meeting = await uow.meetings.get(meeting_id, LIVE_LEGS)
            if meeting is not None:
                await self._resume_media(uow, meeting)

    async def _calls_lost(
        self, uow: UnitOfWork, meeting_id: str, meeting: Meeting | None = None, close: bool = True
    ) -> Meeting | None:
        meeting = meeting or await uow.meetings.get(meeting_id, LIVE_LEGS)
        if meeting is None:
            return None
        waiting = await self._legs_awaiting_dial(uow, meeting_id)
        # Legs other servers carry (issue 16, legs.node) did not die with the owner.
        waiting |= {leg.id for leg in meeting.live_legs if uow.meetings.node_of_leg(leg.id)}
        meeting.calls_lost(self._clock(), keep=waiting, close=close)
        app = await self._directory.app(meeting.app_id)
        await self._record(uow, meeting, app)
        return meeting

    async def _resume_media(self, uow: UnitOfWork, meeting: Meeting) -> None:
        """The new node gets the meeting's media settings and goes on recording it (after the
        lost calls are recorded: their CDRs link to the recording that heard them)."""
        if self._settings is None or meeting.state is not MeetingState.ACTIVE:
            return
        app = await self._directory.app(meeting.app_id)
        if app is None:
            return
        now = self._clock()
        orders = await meeting_media.resumed_orders(uow, meeting, self._settings, app.env, now)
        if orders:
            await self._recorder.record(uow, meeting, app, orders, now)

    async def _record(self, uow: UnitOfWork, meeting: Meeting, app: App | None) -> None:
        await self._recorder.record(uow, meeting, app, now=self._clock())

    @staticmethod
    async def _legs_awaiting_dial(uow: UnitOfWork, meeting_id: str) -> set[str]:
        waiting = set()
        for stored in await uow.orders.for_meeting(meeting_id):
            try:
                order = decode(stored.kind, stored.body)
            except UnknownOrder:
                continue
            if isinstance(order, DialOrder):
                waiting.add(order.leg_id)
        return waiting


def _apply_report(meeting: Meeting, report: LegReport) -> bool:
    """What one carrier report changes in the meeting (False when it changes nothing)."""
    if report.progress is Progress.RINGING:
        return meeting.leg_ringing(report.leg_id, report.at)
    if report.progress is Progress.ANSWERED:
        return meeting.leg_answered(report.leg_id, report.at)
    return meeting.leg_ended(report.leg_id, report.reason or EndReason.FAILED, report.at)
