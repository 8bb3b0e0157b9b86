"""The meeting clock: ends meetings past their maximum duration and starts booked ones.

Several clocks may run (one per node with the role): each due meeting is changed under its row
lock and only if it is still in the state that made it due, so the change happens once.
"""

from __future__ import annotations

from collections.abc import Callable

from telemeeting.config import Settings
from telemeeting.domain.model import CloseReason, MeetingState
from telemeeting.service import meeting_media
from telemeeting.service.changes import ChangeRecorder, dial_orders, hang_up_orders
from telemeeting.service.placement import Placement
from telemeeting.store.unit_of_work import Database
from telemeeting.telephony.orders import Order, SetMuted


class MeetingClock:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: Callable[[], float],
        placement: Placement,
        recorder: ChangeRecorder,
    ) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock
        self._placement = placement
        self._recorder = recorder

    async def run_due(self) -> int:
        """End meetings past their maximum duration and start booked ones; how many changed."""
        now = self._clock()
        async with self._db.reader() as uow:
            expired, booked = await uow.meetings.ids_due(now)
        for meeting_id in expired:
            await self._expire(meeting_id, now)
        for meeting_id in booked:
            await self._start_booked(meeting_id, now)
        return len(expired) + len(booked)

    async def _expire(self, meeting_id: str, now: float) -> None:
        async with self._db.unit_of_work() as uow:
            meeting = await uow.meetings.get(meeting_id)
            if meeting is None or meeting.state is not MeetingState.ACTIVE:
                return
            app = await uow.apps.get(meeting.app_id)
            legs = meeting.close(CloseReason.MAX_DURATION, now)
            orders = hang_up_orders(meeting, legs, app.env if app else "", end=True)
            await self._recorder.record(uow, meeting, app, orders, now)

    async def _start_booked(self, meeting_id: str, now: float) -> None:
        owner = await self._placement.choose()
        async with self._db.unit_of_work() as uow:
            meeting = await uow.meetings.get(meeting_id)
            if meeting is None or meeting.state is not MeetingState.BOOKED:
                return
            app = await uow.apps.get(meeting.app_id)
            meeting.start(now, self._settings.meetings.max_duration_seconds)
            meeting.announce_pending_legs(now)
            await uow.meetings.assign(meeting_id, owner)
            orders: list[Order] = []
            if app is not None:  # its media settings (issue 14) before its first dial
                beep = self._settings.meetings.beep
                media = await meeting_media.kept(uow, meeting_id, beep)
                orders = await meeting_media.starting_orders(
                    uow, meeting, media, self._settings, app.env, now
                )
                to_dial = meeting.legs_to_dial()
                orders += dial_orders(meeting, to_dial, app.env)
                # Parties booked with "muted": "1" join muted, as in an immediate meeting.
                muted = [leg for leg in to_dial if leg.muted]
                orders += [SetMuted(meeting.id, leg.id, True, app.env) for leg in muted]
            await self._recorder.record(uow, meeting, app, orders, now)
