"""Wire the real adapters together by hand: database, carrier, service, background loops."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from telemeeting.api.auth import Authenticator
from telemeeting.api.ratelimit import RateLimiter
from telemeeting.callbacks.dispatcher import Dispatcher
from telemeeting.config import Settings
from telemeeting.network import Network, parse_networks
from telemeeting.service.directory import Directory
from telemeeting.service.meetings import MeetingService
from telemeeting.store.database import create_engine, migrate
from telemeeting.store.unit_of_work import Database
from telemeeting.telephony.driver import Driver, DriverRouter
from telemeeting.telephony.sim import SimulatedCarrier
from telemeeting.telephony.sip.driver import SipDriver
from telemeeting.wire.environments import PRODUCTION, SANDBOX
from telemeeting.wire.request_id import RequestIdGenerator

log = structlog.get_logger(__name__)

#: How often the clock loop looks for meetings to end or start.
TICK_SECONDS = 0.5
#: How long a stopping server waits for queued carrier reports to be recorded.
STOP_GRACE_SECONDS = 5.0


@dataclass
class Platform:
    settings: Settings
    db: Database
    service: MeetingService
    authenticator: Authenticator
    limiter: RateLimiter
    request_ids: RequestIdGenerator
    trusted_proxies: list[Network]
    driver: DriverRouter
    dispatcher: Dispatcher
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        await migrate(self.db.engine)
        await self.driver.start()
        await self.service.recover()
        self._tasks.append(asyncio.create_task(self.service.record_reports(), name="reports"))
        self._tasks.append(asyncio.create_task(self._clock_loop(), name="meeting-clock"))
        self._tasks.append(asyncio.create_task(self.dispatcher.run(), name="callbacks"))

    async def stop(self) -> None:
        with contextlib.suppress(TimeoutError):  # what the carrier already said is recorded
            await asyncio.wait_for(self.service.reports_recorded(), STOP_GRACE_SECONDS)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.driver.close()
        await self.dispatcher.close()
        await self.db.dispose()

    async def _clock_loop(self) -> None:
        while True:
            try:
                await self.service.run_due()
            except Exception:
                log.exception("meeting_clock.failed")
            await asyncio.sleep(TICK_SECONDS)


def sip_driver(settings: Settings) -> SipDriver:
    """Media node processes placing real calls through the configured routes."""
    media = settings.media
    return SipDriver(
        settings.sip,
        nodes=media.workers,
        ring_timeout_seconds=settings.sip.ring_timeout_seconds,
        rtp_timeout_seconds=media.rtp_timeout_seconds,
        extension_delay_seconds=media.extension_delay_seconds,
        dtmf_tone_seconds=media.dtmf_tone_seconds,
        dtmf_gap_seconds=media.dtmf_gap_seconds,
    )


def build_platform(settings: Settings, clock: Callable[[], float] = time.time) -> Platform:
    db = Database(create_engine(settings.database.url))
    sim = SimulatedCarrier(settings.sim.ring_seconds, settings.sim.ring_timeout_seconds, clock)
    # The sandbox always uses the simulated carrier; production too until a route is configured.
    production: Driver = sip_driver(settings) if settings.sip.routes else sim
    driver = DriverRouter({SANDBOX: sim, PRODUCTION: production})
    service = MeetingService(db, driver, settings, clock)
    dispatcher = Dispatcher(db, settings.callbacks, clock)
    service.pushes_waiting = dispatcher.wake
    return Platform(
        settings=settings,
        db=db,
        service=service,
        authenticator=Authenticator(Directory(db), settings),
        limiter=RateLimiter(settings.limits.requests_per_second, settings.limits.burst),
        request_ids=RequestIdGenerator(settings.zone),
        trusted_proxies=parse_networks(settings.server.trusted_proxies),
        driver=driver,
        dispatcher=dispatcher,
    )
