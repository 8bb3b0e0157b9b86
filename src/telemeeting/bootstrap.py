"""The composition root: wire the real adapters together by hand, for the roles a process runs.

Roles (`telemeeting serve --roles`): `api` answers the ytx API; `media` owns calls (the carrier)
and carries out the orders of the meetings it owns; `dispatcher` delivers pushes; `clock` ends
meetings past their maximum duration, starts booked ones and hangs up calls whose account ran
out of money. Each starts only what it needs; every node registers itself and renews its lease
with a heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import structlog

from telemeeting.api.auth import Authenticator
from telemeeting.api.ratelimit import SYNC_SECONDS, RateLimiter
from telemeeting.callbacks.dispatcher import Dispatcher
from telemeeting.config import Settings
from telemeeting.network import Network, parse_networks
from telemeeting.service.accounts import AccountQueries
from telemeeting.service.balance_watch import BalanceWatcher
from telemeeting.service.calls import CallRecords
from telemeeting.service.changes import ChangeRecorder, Wakeups
from telemeeting.service.clock import MeetingClock
from telemeeting.service.dialin import DialIn, render_prompts
from telemeeting.service.directory import Directory
from telemeeting.service.media import MediaRole
from telemeeting.service.meetings import MeetingService
from telemeeting.service.placement import Placement
from telemeeting.service.retention import Retention, RetentionPolicy
from telemeeting.service.spans import ServerLinks
from telemeeting.service.speakers import SpeakerEvents
from telemeeting.store.sql import Dialect
from telemeeting.store.unit_of_work import PUSHES_CHANNEL, Database
from telemeeting.store.vacuum import DeadRowSweeper
from telemeeting.telephony.driver import Driver, DriverRouter
from telemeeting.telephony.sim import SimulatedCarrier
from telemeeting.telephony.sip.driver import SipDriver
from telemeeting.wire.environments import PRODUCTION, SANDBOX
from telemeeting.wire.request_id import RequestIdGenerator

log = structlog.get_logger(__name__)

API, MEDIA, DISPATCHER, CLOCK = "api", "media", "dispatcher", "clock"
ROLES = (API, MEDIA, DISPATCHER, CLOCK)
#: How often the clock looks for meetings to end or start.
TICK_SECONDS = 0.5


def parse_roles(text: str | Iterable[str]) -> frozenset[str]:
    """`api,media` → the set of roles; unknown or no roles are a ValueError for the CLI."""
    items = text.split(",") if isinstance(text, str) else list(text)
    roles = frozenset(item.strip().lower() for item in items if item.strip())
    unknown = roles - set(ROLES)
    if unknown:
        raise ValueError(f"unknown role(s) {', '.join(sorted(unknown))}; known: {', '.join(ROLES)}")
    if not roles:
        raise ValueError(f"no roles given; known: {', '.join(ROLES)}")
    return roles


@dataclass
class Platform:
    settings: Settings
    db: Database
    roles: frozenset[str]
    node_id: str
    service: MeetingService
    authenticator: Authenticator
    limiter: RateLimiter
    request_ids: RequestIdGenerator
    trusted_proxies: list[Network]
    media: MediaRole | None
    dispatcher: Dispatcher | None
    clock: MeetingClock | None
    accounts: AccountQueries
    #: The clock role's balance watcher: hangs up calls whose account ran out of money.
    balance_watcher: BalanceWatcher | None = None
    #: The clock role's pruning of ended meetings ([retention]); None when off.
    retention: Retention | None = None
    #: A media role's links of meetings to other servers (issue 16); None without real SIP.
    server_links: ServerLinks | None = None
    address: str = ""
    ready: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stopped: bool = False

    async def start(self) -> None:
        """Start the roles; a carrier that cannot start raises DriverError here."""
        await self.db.migrate()
        await self._register()
        if self.server_links is not None:  # the legs a previous run of it carried are gone
            await self.server_links.end_server(self.node_id)  # (before new ones can come)
            await self.server_links.listen()
        if self.media is not None:
            await self.media.start()
        if self.dispatcher is not None:
            await self.db.listen(PUSHES_CHANNEL, self.dispatcher.wake)
            self._spawn(self.dispatcher.run(), "callbacks")
        if self.clock is not None:
            self._spawn(self._clock_loop(self.clock), "meeting-clock")
        if self.balance_watcher is not None:
            self._spawn(self.balance_watcher.run(), "balance-watcher")
        if self.retention is not None:
            interval = self.settings.retention.interval_seconds
            self._spawn(self._retention_loop(self.retention, interval), "retention")
        vacuum = self.settings.retention.vacuum_seconds
        if CLOCK in self.roles and vacuum > 0 and self.db.dialect is Dialect.POSTGRES:
            self._spawn(self._vacuum_loop(DeadRowSweeper(self.db), vacuum), "vacuum")
        self._spawn(self._heartbeat_loop(), "heartbeat")
        if API in self.roles and self.settings.limits.requests_per_second > 0:
            self._spawn(self._rate_limit_loop(), "rate-limit-sync")
        self.ready = True

    async def stop(self) -> None:
        """Stop the roles and leave the cluster; a second call does nothing."""
        if self._stopped:
            return
        self._stopped = True
        self.ready = False
        if self.media is not None:
            with contextlib.suppress(Exception):
                await self.media.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.dispatcher is not None:
            await self.dispatcher.close()
        with contextlib.suppress(Exception):
            async with self.db.unit_of_work() as uow:
                await uow.nodes.leave(self.node_id)
        await self.db.dispose()

    def _spawn(self, work: object, name: str) -> None:
        self._tasks.append(asyncio.create_task(work, name=name))  # type: ignore[arg-type]

    async def _register(self) -> None:
        async with self.db.unit_of_work() as uow:
            roles = ",".join(role for role in ROLES if role in self.roles)
            await uow.nodes.register(self.node_id, roles, self.address, time.time())

    async def _heartbeat_loop(self) -> None:
        """Renew this node's lease; a media node also adopts meetings whose node's lease ran out."""
        cluster = self.settings.cluster
        while True:
            await asyncio.sleep(cluster.heartbeat_seconds)
            try:
                async with self.db.unit_of_work() as uow:
                    if not await uow.nodes.beat(self.node_id, time.time()):
                        await self._register()
                if self.media is not None:
                    await self.media.take_over_stale(cluster.lease_seconds)
                if self.server_links is not None:
                    await self.server_links.sweep(cluster.lease_seconds)
            except Exception:
                log.exception("heartbeat.failed")

    async def _rate_limit_loop(self) -> None:
        """Share each account's rate limit with the other API processes (api/ratelimit.py)."""
        last = time.monotonic()
        while True:
            await self._share_rate_limit(time.monotonic() - last)
            last = time.monotonic()
            await asyncio.sleep(SYNC_SECONDS)

    async def _share_rate_limit(self, interval: float) -> None:
        demand = self.limiter.demand(interval)
        now = time.time()
        try:
            async with self.db.unit_of_work() as uow:
                await uow.rate_demand.publish(self.node_id, demand, now)
                totals = await uow.rate_demand.totals(now - 3 * SYNC_SECONDS)
                processes = await uow.rate_demand.api_nodes(
                    now - self.settings.cluster.lease_seconds
                )
                if int(now) % 60 == 0:
                    await uow.rate_demand.forget(now - 60)
        except Exception:
            log.exception("rate_limit.sync_failed")
            return
        self.limiter.set_shares(totals, processes)

    @staticmethod
    async def _clock_loop(clock: MeetingClock) -> None:
        while True:
            try:
                await clock.run_due()
            except Exception:
                log.exception("meeting_clock.failed")
            await asyncio.sleep(TICK_SECONDS)

    @staticmethod
    async def _vacuum_loop(sweeper: DeadRowSweeper, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                vacuumed = await sweeper.sweep()
                if vacuumed:
                    log.info("vacuum.done", tables=vacuumed)
            except Exception:
                log.exception("vacuum.failed")

    @staticmethod
    async def _retention_loop(retention: Retention, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                pruned = await retention.prune()
                if pruned.meetings:
                    log.info("retention.pruned", **vars(pruned))
            except Exception:
                log.exception("retention.failed")


def sip_driver(settings: Settings) -> SipDriver:
    """Media node processes placing real calls through the configured routes (and answering
    the dial-in numbers, with the IVR's prompts rendered before they start)."""
    media = settings.media
    return SipDriver(
        settings.sip,
        nodes=media.workers,
        max_legs_per_node=settings.placement.max_legs_per_node,
        prompts=(lambda: render_prompts(settings)) if settings.sip.dialin else None,
        ring_timeout_seconds=settings.sip.ring_timeout_seconds,
        rtp_timeout_seconds=media.rtp_timeout_seconds,
        extension_delay_seconds=media.extension_delay_seconds,
        dtmf_tone_seconds=media.dtmf_tone_seconds,
        dtmf_gap_seconds=media.dtmf_gap_seconds,
    )


def carrier(settings: Settings, clock: Callable[[], float]) -> DriverRouter:
    """The sandbox always uses the simulated carrier; production too until a route exists."""
    sim = SimulatedCarrier(settings.sim.ring_seconds, settings.sim.ring_timeout_seconds, clock)
    real = settings.sip.routes or settings.sip.dialin
    production: Driver = sip_driver(settings) if real else sim
    return DriverRouter({SANDBOX: sim, PRODUCTION: production})


def retention(db: Database, settings: Settings, clock: Callable[[], float]) -> Retention | None:
    """The clock role's pruning of ended meetings; None when [retention] keeps them forever."""
    kept = settings.retention
    if kept.ended_meetings_days <= 0:
        return None
    return Retention(db, RetentionPolicy(kept.ended_meetings_days, kept.batch, 0.1), clock)


def build_platform(
    settings: Settings,
    clock: Callable[[], float] = time.time,
    roles: Iterable[str] = ROLES,
) -> Platform:
    roles = parse_roles(roles)
    node_id = settings.server.node
    # One connection per request admitted at once, plus the background roles' own.
    db = Database(settings.database.url, pool_size=max(4, settings.server.max_in_flight + 4))
    wakeups = Wakeups()
    placement = Placement(db, node_id, MEDIA in roles, settings.cluster.lease_seconds, clock)
    recorder = ChangeRecorder.from_settings(settings, wakeups)
    directory = Directory(db)
    records = CallRecords(db, clock, recorder, directory, settings)
    speakers = SpeakerEvents(db, recorder, clock, node_id)
    media = (
        MediaRole(db, node_id, carrier(settings, clock), records, clock, speakers)
        if MEDIA in roles
        else None
    )
    dispatcher = Dispatcher(db, settings.callbacks, clock) if DISPATCHER in roles else None
    server_links = None
    if media is not None:  # dial-in (issue 15): the service admits the callers of its meetings
        production = media.driver.driver(PRODUCTION)
        if isinstance(production, SipDriver):
            ids = RequestIdGenerator(settings.zone)
            dialin = DialIn(db, node_id, recorder, directory, clock, ids)
            production.set_admitter(dialin.admit)
            # Issue 16: a caller of a meeting another server owns joins it through a link.
            server_links = ServerLinks(
                db, node_id, recorder, directory, clock,
                lease_seconds=settings.cluster.lease_seconds,
            )  # fmt: skip
            server_links.attach(production)
            server_links.speakers = speakers
            server_links.wake = media.wake
            production.set_server_links(server_links)
            dialin.span_servers = True
    if media is not None:
        wakeups.orders = media.wake
    if dispatcher is not None:
        wakeups.pushes = dispatcher.wake
    return Platform(
        settings=settings,
        db=db,
        roles=roles,
        node_id=node_id,
        service=MeetingService(db, settings, clock, placement, recorder),
        authenticator=Authenticator(directory, settings),
        limiter=RateLimiter(settings.limits.requests_per_second, settings.limits.burst),
        request_ids=RequestIdGenerator(settings.zone),
        trusted_proxies=parse_networks(settings.server.trusted_proxies),
        media=media,
        dispatcher=dispatcher,
        clock=MeetingClock(db, settings, clock, placement, recorder) if CLOCK in roles else None,
        accounts=AccountQueries(db, settings),
        balance_watcher=BalanceWatcher(db, clock, recorder) if CLOCK in roles else None,
        retention=retention(db, settings, clock) if CLOCK in roles else None,
        server_links=server_links,
        address=f"{settings.server.host}:{settings.server.port}",
    )
