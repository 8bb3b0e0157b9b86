"""Recording a change: the meeting, the pushes it causes and the carrier orders it needs, all
in the caller's transaction, and who to wake once it has committed."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from telemeeting.config import Settings
from telemeeting.domain.model import Leg, LegState, Meeting, new_id
from telemeeting.service import billing, routing
from telemeeting.service.pushes import pushes_for
from telemeeting.service.recordings import RecordingLinks, add_tapes
from telemeeting.store.orders import StoredOrder
from telemeeting.store.outbox import PENDING, STORED
from telemeeting.store.records import App, StoredEvent
from telemeeting.store.unit_of_work import UnitOfWork
from telemeeting.telephony.orders import DialOrder, EndMeeting, HangUp, Order, encode, kind_of
from telemeeting.wire.environments import PRODUCTION
from telemeeting.wire.phones import parse_phone


def _nothing() -> None:
    pass


@dataclass
class Wakeups:
    """In-process wake-ups after a commit (other processes are woken by NOTIFY)."""

    pushes: Callable[[], None] = _nothing
    orders: Callable[[], None] = _nothing


@dataclass(frozen=True)
class ChangeRecorder:
    """What every change is recorded with, made once per process: the zone of push times, who
    to wake after the commit, and the tariff of the CDRs' charges."""

    zone: ZoneInfo
    wakeups: Wakeups
    tariff: billing.Tariff
    #: How CDRs link to the recordings covering their call (issue 14); None: never.
    links: RecordingLinks | None = None

    @classmethod
    def from_settings(cls, settings: Settings, wakeups: Wakeups) -> ChangeRecorder:
        links = RecordingLinks.from_settings(settings)
        return cls(settings.zone, wakeups, billing.Tariff.from_settings(settings), links)

    async def record(
        self,
        uow: UnitOfWork,
        meeting: Meeting,
        app: App | None,
        orders: Sequence[Order] = (),
        now: float | None = None,
    ) -> None:
        """`record_change` with this process's zone, wake-ups and tariff."""
        await record_change(
            uow, meeting, app, self.zone, self.wakeups, orders, now, tariff=self.tariff,
            links=self.links,
        )  # fmt: skip


async def record_change(
    uow: UnitOfWork,
    meeting: Meeting,
    app: App | None,
    zone: ZoneInfo,
    wakeups: Wakeups,
    orders: Sequence[Order] = (),
    now: float | None = None,
    *,
    tariff: billing.Tariff,
    links: RecordingLinks | None = None,
) -> None:
    """Save the meeting, store the pushes for what it recorded and the carrier orders; for each
    leg it ended, the CDR and its charge (service/billing.py)."""
    charges = await billing.charge_ended_legs(uow, meeting, app, tariff)
    pushes = [p for event in meeting.events for p in pushes_for(meeting, event, zone, charges)]
    meeting.events.clear()
    if links is not None:
        await add_tapes(uow, meeting, pushes, links, now)
    pushed = bool(app and app.env == PRODUCTION and app.callback_url)
    if pushes:
        first = uow.meetings.reserve_seqs(meeting.id, len(pushes))
        await uow.events.add_all(
            [
                StoredEvent(
                    id=new_id(),  # time-ordered: the events index appends
                    meeting_id=meeting.id,
                    seq=first + offset,
                    leg_id=push.leg_id,
                    app_id=meeting.app_id,
                    kind=push.kind,
                    body=push.encoded(),
                    created_at=push.at,
                    delivery=PENDING if pushed else STORED,
                    attempts=0,
                )
                for offset, push in enumerate(pushes)
            ],
            pushed,
        )
        if pushed:  # other processes: the database's trigger NOTIFYs (migration 0011)
            uow.after_commit(wakeups.pushes)
    await uow.meetings.save(meeting)
    if orders:
        servers: list[str] = []
        if routing.needs_servers(orders):
            owner = uow.meetings.owner_of(meeting.id)
            servers = [s for s in await uow.spans.servers(meeting.id) if s != owner]
        stored = [
            StoredOrder(0, o.meeting_id, kind_of(o), encode(o), node)
            for o, node in routing.address(orders, uow.meetings.node_of_leg, servers)
        ]
        await uow.orders.add(stored, time.time() if now is None else now)
        uow.after_commit(wakeups.orders)
    await billing.record_cdrs(uow, meeting, app, billing.cdr_pushes(pushes), charges)


def dial_orders(meeting: Meeting, legs: Sequence[Leg], env: str) -> list[Order]:
    """A dial order for each leg still waiting to be dialled."""
    orders: list[Order] = []
    for leg in legs:
        if leg.state is not LegState.CALLOUT:
            continue
        phone = parse_phone(leg.phone)
        orders.append(
            DialOrder(
                meeting_id=meeting.id,
                leg_id=leg.id,
                number=phone.number if phone else leg.phone,
                extension=phone.extension if phone else "",
                caller_id=leg.caller_id,
                env=env,
            )
        )
    return orders


def hang_up_orders(meeting: Meeting, legs: Sequence[Leg], env: str, end: bool) -> list[Order]:
    """Hang up (or cancel) these legs; `end` also releases the meeting on the carrier."""
    orders: list[Order] = [HangUp(meeting.id, leg.id, env) for leg in legs]
    if end:
        orders.append(EndMeeting(meeting.id, env))
    return orders
