"""The balance watcher (clock role): hangs up a billed account's calls when its money runs out.

An account's stored balance pays for calls that have ended; its live calls are charged when they
end. So every half second the watcher reads the live legs of billed accounts' production
meetings and works out, per account, when the balance plus the credit limit minus what the live
calls have used so far can no longer pay the next unit any call would start
(`billing.run_out_at`). It sleeps until the earliest such moment and then ends every live leg of
that account with `余额不足` (answered: `应答|余额不足`; still ringing: `未应答|余额不足`) and
orders the owning media node to hang them up, through `record_change`, so each leg's CDR and
charge are written in the same transaction as usual.

Several clocks may run: a leg ends once (the domain's rule under the meeting's row lock), so a
second watcher finds nothing left to end.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable

import structlog

from telemeeting.domain.model import EndReason, MeetingState
from telemeeting.service.billing import budget, hang_up_time, run_out_at
from telemeeting.service.changes import ChangeRecorder, hang_up_orders
from telemeeting.store.ledger import LiveLeg
from telemeeting.store.repositories import LIVE_LEGS
from telemeeting.store.unit_of_work import Database

log = structlog.get_logger(__name__)

#: Seconds between looks at the live calls when no cut-off is due sooner.
POLL_SECONDS = 0.5
#: A cut-off due within this many seconds is carried out now.
EARLY_SECONDS = 0.02


class BalanceWatcher:
    def __init__(self, db: Database, clock: Callable[[], float], recorder: ChangeRecorder) -> None:
        self._db = db
        self._clock = clock
        self._recorder = recorder
        self._tariff = recorder.tariff

    async def run(self) -> None:
        """Forever: check, then sleep until the next cut-off or the next look."""
        while True:
            try:
                due = await self.check()
            except Exception:
                log.exception("billing.watch_failed")
                due = None
            delay = POLL_SECONDS if due is None else due - self._clock()
            await asyncio.sleep(min(POLL_SECONDS, max(0.01, delay)))

    async def check(self) -> float | None:
        """Cut off the accounts whose money has run out; when the next one will (if within the
        next look), else None."""
        now = self._clock()
        async with self._db.reader() as uow:
            legs = await uow.ledger.live_billed_legs()
        by_account: dict[str, list[LiveLeg]] = defaultdict(list)
        for leg in legs:
            by_account[leg.account_sid].append(leg)
        next_due: float | None = None
        for sid, account_legs in by_account.items():
            first = account_legs[0]
            answered = [leg.answered_at for leg in account_legs if leg.answered_at is not None]
            due = run_out_at(
                self._tariff,
                self._tariff.price(first.price_per_unit),
                budget(first.balance, first.credit_limit),
                answered,
                ringing=len(answered) < len(account_legs),
                now=now,
                horizon=POLL_SECONDS + 0.1,
            )
            if due is None:
                continue
            if due <= now + EARLY_SECONDS:
                await self._cut_off(sid, account_legs, due)
            elif next_due is None or due < next_due:
                next_due = due
        return next_due

    async def _cut_off(self, sid: str, legs: list[LiveLeg], due: float) -> None:
        meeting_ids = list(dict.fromkeys(leg.meeting_id for leg in legs))
        ended = 0
        for meeting_id in meeting_ids:
            async with self._db.unit_of_work() as uow:
                meeting = await uow.meetings.get(meeting_id, LIVE_LEGS)
                if meeting is None or meeting.state is not MeetingState.ACTIVE:
                    continue
                live = meeting.live_legs
                if not live:
                    continue
                at = hang_up_time(due, self._clock(), (leg.answered_at for leg in live))
                for leg in live:
                    meeting.leg_ended(leg.id, EndReason.NO_BALANCE, at)
                app = await uow.apps.get(meeting.app_id)
                env = app.env if app else ""
                closed = meeting.state is MeetingState.ENDED
                orders = hang_up_orders(meeting, live, env, end=closed)
                await self._recorder.record(uow, meeting, app, orders, at)
                ended += len(live)
        log.warning("billing.cut_off", account=sid, legs=ended, meetings=len(meeting_ids))
