"""One meeting across servers (issue 16): linking a meeting's home to another server through
the store, and ending a dead server's part of the meetings it did not own.

A caller who dials in on server B for a meeting that server A owns is admitted by B (the leg is
B's: `legs.node`, service/dialin.py). B then extends the meeting to itself:

1. B's driver reserves its end of a cascade link on the worker carrying the meeting there;
2. B records the span (`meeting_spans`) and writes `LinkServer(end of B)` addressed to A;
3. A claims it, points the meeting's home worker at B's end and replies `LinkServer(end of A,
   reply)` addressed to B (or one with `error`);
4. B points its end at A's: the two mixes hear each other. B waits `LINK_SECONDS` at most for
   the reply; without one it closes its end, removes the span and the caller is refused.

A dial-out does the same when the owner's workers are all full of the meeting (`[placement]
max_legs_per_node`): the owner hands the `DialOrder` (with `home` set) to the least loaded other
live media server, which links the meeting as above and then dials; the leg is that server's.

The orders table carries both steps, so they are woken like any order (NOTIFY on PostgreSQL) and
need no connection between the servers other than the RTP of the link. A link closes when B's
part ends (its last leg left, or the meeting ended: B writes `UnlinkServer` to the owner) and
when B dies: any live media server finds B's lease expired (`sweep`), ends B's live legs once
each (one `disconnect` push and one CDR each, under the meeting's row lock) and tells the owner
to close its end (and, with a `ServerPresence` each, that its members left).

What the link's audio does not carry crosses through the orders table as well:

- the meeting's in-call settings (beep, speaker events, end on the creator's leave): the home's
  reply carries the `ConfigureMeeting` its driver runs, which B's workers take unless a newer one
  reached B already (one sent after B's span was recorded is addressed to B too);
- join and leave beeps: a member joining or leaving on one server is a `ServerPresence` order to
  each other server of the meeting (the owner and the spans), which beep to their own members.
  Only meetings that span servers, and only when the meeting's `beep` wants that beep, write one;
- speaker events: each server reports its own talkers and service/speakers.py keeps the
  union; for a dead server, the sweep that ends its legs reports none talking there.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any, Protocol

import structlog

from telemeeting.domain.model import EndReason, LegState, MeetingState
from telemeeting.service.changes import ChangeRecorder
from telemeeting.service.directory import Directory
from telemeeting.service.speakers import SpeakerEvents
from telemeeting.store.orders import StoredOrder
from telemeeting.store.repositories import legs_on, legs_with_ids
from telemeeting.store.unit_of_work import ORDERS_CHANNEL, Database, UnitOfWork
from telemeeting.telephony.driver import SpeakersReport
from telemeeting.telephony.media.cascade_control import CascadeEndpoint
from telemeeting.telephony.orders import (
    ConfigureMeeting,
    DialOrder,
    LinkServer,
    MediaOrder,
    Order,
    RelinkServer,
    ServerLinkOrder,
    ServerPresence,
    UnlinkServer,
    decode,
    encode,
    kind_of,
    settings_of,
)
from telemeeting.wire.environments import PRODUCTION

log = structlog.get_logger(__name__)

#: How often a server waiting for a link's reply looks for it when no NOTIFY woke it.
_REPLY_POLL_SECONDS = 0.5
#: The kind of `LinkServer` orders in the orders table.
_LINK_KIND = "link_server"

#: How long a server waits for the home's end of a link (two order round trips, normally
#: tens of milliseconds) before it gives up and refuses the caller.
LINK_SECONDS = 10.0


class LinkFailed(Exception):
    """The meeting could not be extended to this server (the caller is refused)."""


class LinkDriver(Protocol):
    """What the SIP driver offers for links to other servers (telephony/sip/driver.py)."""

    async def open_server_end(
        self, meeting_id: str, server: str, host: str = "", port: int = 0, *, home: bool
    ) -> CascadeEndpoint: ...

    def close_server_end(self, meeting_id: str, server: str) -> None: ...

    def meeting_settings(self, meeting_id: str) -> ConfigureMeeting | None: ...

    async def media(self, order: MediaOrder) -> None: ...

    def peer_presence(self, meeting_id: str, leg_id: str, joined: bool) -> None: ...


class ServerLinks:
    def __init__(
        self,
        db: Database,
        node_id: str,
        recorder: ChangeRecorder,
        directory: Directory,
        clock: Callable[[], float],
        link_seconds: float = LINK_SECONDS,
        lease_seconds: float = 10.0,
    ) -> None:
        self._db = db
        self.node_id = node_id
        self._recorder = recorder
        self._directory = directory
        self._clock = clock
        self._link_seconds = link_seconds
        self._lease_seconds = lease_seconds
        self._driver: LinkDriver | None = None
        #: Wakes this server's order loop after a local commit (others: NOTIFY).
        self.wake: Callable[[], None] = lambda: None
        #: Meetings another server owns that this one is linked into, with their home.
        self._joined: dict[str, str] = {}
        #: Meetings whose part here just ended: the leave of their last member here, which the
        #: driver learns after the end, is still told to the other servers.
        self._parting: set[str] = set()
        self._joining: dict[str, asyncio.Lock] = {}
        self._replies: dict[str, asyncio.Future[LinkServer]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._notified = asyncio.Event()
        #: Speaker events: a dead server's talkers leave the meetings' talkers with its legs.
        self.speakers: SpeakerEvents | None = None

    def attach(self, driver: LinkDriver) -> None:
        self._driver = driver

    # ---- the extending server (B) -----------------------------------------------------------

    async def join(self, meeting_id: str) -> None:
        """Link the meeting (already on one of this server's workers) to its owner, unless this
        server owns it or is linked already. Raises LinkFailed."""
        driver = self._need_driver()
        lock = self._joining.setdefault(meeting_id, asyncio.Lock())
        async with lock:
            if meeting_id in self._joined:
                return
            async with self._db.reader() as uow:
                owner = await uow.spans.owner(meeting_id)
            if not owner or owner == self.node_id:
                return
            try:
                await self._link_to(driver, meeting_id, owner)
            except Exception as exc:
                log.warning("server_link.failed", meeting_id=meeting_id, home=owner, error=str(exc))
                driver.close_server_end(meeting_id, owner)
                with contextlib.suppress(Exception):
                    async with self._db.unit_of_work() as uow:
                        await uow.spans.remove(meeting_id, self.node_id)
                raise LinkFailed(str(exc) or type(exc).__name__) from exc
            self._joined[meeting_id] = owner
            log.info("server_link.opened", meeting_id=meeting_id, home=owner)

    async def _link_to(self, driver: LinkDriver, meeting_id: str, owner: str) -> None:
        mine = await driver.open_server_end(meeting_id, owner, home=False)
        reply = self._replies[meeting_id] = asyncio.get_running_loop().create_future()
        try:
            now = self._clock()
            request = LinkServer(
                meeting_id, self.node_id, PRODUCTION, mine.host, mine.port, mine.codec
            )
            async with self._db.unit_of_work() as uow:
                await uow.spans.add(meeting_id, self.node_id, mine.host, mine.port, now)
                await uow.orders.add([_stored(request, owner)], now)
                uow.after_commit(self.wake)
            theirs = await self._reply(meeting_id, reply)
        finally:
            self._replies.pop(meeting_id, None)
        if theirs.error:
            raise LinkFailed(f"{owner}: {theirs.error}")
        await driver.open_server_end(meeting_id, owner, theirs.host, theirs.port, home=False)
        settings = settings_of(theirs)
        if settings is not None and driver.meeting_settings(meeting_id) is None:
            await driver.media(settings)

    async def overflow(self, order: DialOrder) -> bool:
        """The owner's workers are all full of the meeting: hand the dial to the least loaded
        other live media server, which links the meeting here before it dials. False (dial
        here, over the limit) when there is none."""
        since = self._clock() - self._lease_seconds
        async with self._db.reader() as uow:
            nodes = await uow.nodes.live(since)
        others = [n for n in nodes if "media" in n.role_set and n.id != self.node_id]
        if not others:
            return False
        chosen = min(others, key=lambda node: (node.calls, node.id)).id
        now = self._clock()
        async with self._db.unit_of_work() as uow:
            # Under the meeting's row lock: a hang-up recorded before this sees the leg ended
            # (nothing to dial), one after it is addressed to the chosen server.
            meeting = await uow.meetings.get(order.meeting_id, legs_with_ids([order.leg_id]))
            if meeting is None or not any(leg.live for leg in meeting.legs):
                return True
            await uow.spans.place_leg(order.leg_id, chosen)
            await uow.spans.add(order.meeting_id, chosen, "", 0, now)
            await uow.orders.add([_stored(replace(order, home=self.node_id), chosen)], now)
        log.info("server_link.overflow", meeting_id=order.meeting_id, server=chosen)
        return True

    async def _reply(self, meeting_id: str, reply: asyncio.Future[LinkServer]) -> LinkServer:
        """The home's answer, within `link_seconds` (TimeoutError). The order loop may be the
        one waiting (a dial handed over is carried out in it), so the reply is also claimed
        here, woken by the orders' NOTIFY (`listen`) and looked for at least every
        `_REPLY_POLL_SECONDS`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._link_seconds
        while not reply.done():
            self._notified.clear()
            async with self._db.unit_of_work() as uow:
                found = await uow.orders.claim_addressed(self.node_id, meeting_id, _LINK_KIND)
            for stored in found:
                order = decode(stored.kind, stored.body)
                if isinstance(order, LinkServer):
                    await self.on_order(order)
            remaining = deadline - loop.time()
            if reply.done() or remaining <= 0:
                break
            notified: asyncio.Future[Any] = asyncio.ensure_future(self._notified.wait())
            waiting: set[asyncio.Future[Any]] = {reply, notified}
            await asyncio.wait(
                waiting,
                timeout=min(remaining, _REPLY_POLL_SECONDS),
                return_when=asyncio.FIRST_COMPLETED,
            )
            notified.cancel()
        if not reply.done():
            raise TimeoutError(f"no answer from the home within {self._link_seconds:g} s")
        return reply.result()

    async def listen(self) -> None:
        """Be woken when orders are written (a link's reply may be among them)."""
        await self._db.listen(ORDERS_CHANNEL, self._notified.set)

    def ended_here(self, meeting_id: str) -> None:
        """The driver ended its part of the meeting: if another server is its home, forget the
        span and have the home close its end."""
        owner = self._joined.pop(meeting_id, None)
        self._joining.pop(meeting_id, None)
        if owner is not None:
            self._parting.add(meeting_id)
            asyncio.get_running_loop().call_later(
                self._link_seconds, self._parting.discard, meeting_id
            )
            self._spawn(self._leave(meeting_id))

    def presence(self, meeting_id: str, leg_id: str, joined: bool, *, home: bool) -> None:
        """A member joined or left the meeting here (the driver checked that the meeting's
        `beep` wants it): if the meeting spans servers (`home`: this server is its home with
        servers linked), each other server beeps to its own members."""
        if home or meeting_id in self._joined or meeting_id in self._parting:
            self._spawn(self._tell_presence(meeting_id, leg_id, joined))

    async def _tell_presence(self, meeting_id: str, leg_id: str, joined: bool) -> None:
        order = ServerPresence(meeting_id, leg_id, joined, self.node_id, PRODUCTION)
        try:
            async with self._db.unit_of_work() as uow:
                owner = await uow.spans.owner(meeting_id)
                if not owner:
                    return
                servers = await uow.spans.servers(meeting_id)
                others = [server for server in servers if server != self.node_id]
                to = others if owner == self.node_id else ["", *others]  # "": the owner
                await uow.orders.add([_stored(order, server) for server in to], self._clock())
        except Exception:  # a beep lost; the meeting goes on
            log.exception("server_link.presence_failed", meeting_id=meeting_id)

    async def _leave(self, meeting_id: str) -> None:
        try:
            async with self._db.unit_of_work() as uow:
                if await uow.spans.remove(meeting_id, self.node_id):
                    unlink = UnlinkServer(meeting_id, self.node_id, PRODUCTION)
                    await uow.orders.add([_stored(unlink, "")], self._clock())
                    uow.after_commit(self.wake)
        except Exception:  # the sweep of this server's span follows its next restart or death
            log.exception("server_link.leave_failed", meeting_id=meeting_id)

    # ---- both ends: the orders ------------------------------------------------------------

    async def on_order(self, order: ServerLinkOrder) -> None:
        """A link order claimed by this server (SipDriver.link hands it over)."""
        driver = self._need_driver()
        if isinstance(order, ServerPresence):
            if order.server != self.node_id:
                driver.peer_presence(order.meeting_id, order.leg_id, order.joined)
            return
        if isinstance(order, RelinkServer):
            await self._relink(driver, order)
            return
        if isinstance(order, UnlinkServer):
            driver.close_server_end(order.meeting_id, order.server)
            log.info("server_link.closed", meeting_id=order.meeting_id, server=order.server)
            return
        if order.reply:
            waiting = self._replies.get(order.meeting_id)
            if waiting is not None and not waiting.done():
                waiting.set_result(order)
            return
        try:  # the home: point its end at the server's, answer with its own
            mine = await driver.open_server_end(
                order.meeting_id, order.server, order.host, order.port, home=True
            )
            settings = driver.meeting_settings(order.meeting_id)
            reply = LinkServer(
                order.meeting_id, self.node_id, order.env, mine.host, mine.port, mine.codec,
                reply=True, settings=encode(settings) if settings is not None else "",
            )  # fmt: skip
        except Exception as exc:
            log.warning("server_link.refused", meeting_id=order.meeting_id, error=str(exc))
            error = (str(exc) or type(exc).__name__)[:200]
            reply = LinkServer(order.meeting_id, self.node_id, order.env, reply=True, error=error)
        async with self._db.unit_of_work() as uow:
            await uow.orders.add([_stored(reply, order.server)], self._clock())
            uow.after_commit(self.wake)

    async def _relink(self, driver: LinkDriver, order: RelinkServer) -> None:
        """The home `order.server` died and the meeting has a new owner: drop the link to the
        dead home, and link to the new one unless this server is it."""
        meeting_id = order.meeting_id
        driver.close_server_end(meeting_id, order.server)
        self._joined.pop(meeting_id, None)
        async with self._db.reader() as uow:
            owner = await uow.spans.owner(meeting_id)
        if owner == self.node_id:  # its span row went with the take-over (relink_orders)
            log.info("server_link.home_here", meeting_id=meeting_id, dead=order.server)
            return
        try:
            await self.join(meeting_id)
        except LinkFailed:  # its legs are still heard here; the new home does not hear them
            log.exception("server_link.relink_failed", meeting_id=meeting_id)

    # ---- a server that died ---------------------------------------------------------------

    async def sweep(self, lease_seconds: float) -> int:
        """End the parts of meetings carried by servers whose lease ran out: their live legs
        (once each) and their links (the owner closes its end). How many servers were swept."""
        since = self._clock() - lease_seconds
        async with self._db.reader() as uow:
            stale = [node for node in await uow.spans.stale_servers(since) if node != self.node_id]
        for node in stale:
            await self.end_server(node)
        return len(stale)

    async def end_server(self, node: str) -> int:
        """`node`'s calls are gone (it died, or restarted): end its legs of meetings it did not
        own and drop its spans and orders. How many legs ended."""
        async with self._db.reader() as uow:
            meetings = set(await uow.spans.meetings_with_legs_on(node))
            meetings.update(await uow.spans.spanned_by(node))
        ended = 0
        for meeting_id in sorted(meetings):
            ended += await self._end_part(meeting_id, node)
            if self.speakers is not None:  # its last report never comes: none talk there now
                try:
                    quiet = SpeakersReport(meeting_id, (), self._clock())
                    await self.speakers.record(quiet, node)
                except Exception:  # its talkers stay until another server's next report
                    log.exception("server_link.speakers_failed", meeting_id=meeting_id)
        async with self._db.unit_of_work() as uow:
            await uow.orders.drop_for_node(node)
            await uow.spans.remove_node(node)
        if meetings:
            log.warning("server_link.server_lost", server=node, meetings=len(meetings), legs=ended)
        return ended

    async def _end_part(self, meeting_id: str, node: str) -> int:
        now = self._clock()
        async with self._db.unit_of_work() as uow:
            meeting = await uow.meetings.get(meeting_id, legs_on(node))
            if meeting is None:
                return 0
            live = [leg.id for leg in meeting.legs if leg.live]
            heard = [leg.id for leg in meeting.legs if leg.state is LegState.ANSWER]
            ended = [leg_id for leg_id in live if meeting.leg_ended(leg_id, EndReason.FAILED, now)]
            orders: list[Order] = []
            if await uow.spans.remove(meeting_id, node) and meeting.state is MeetingState.ACTIVE:
                orders.append(UnlinkServer(meeting_id, node, PRODUCTION))
            if meeting.state is MeetingState.ACTIVE:  # its members left: the others beep
                orders += [
                    ServerPresence(meeting_id, leg, False, node, PRODUCTION) for leg in heard
                ]
            if ended or orders:
                app = await self._directory.app(meeting.app_id)
                await self._recorder.record(uow, meeting, app, orders, now)
        return len(ended)

    # ---- plumbing -------------------------------------------------------------------------

    def _need_driver(self) -> LinkDriver:
        if self._driver is None:
            raise LinkFailed("no SIP driver links servers here")
        return self._driver

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _stored(order: Order, node: str) -> StoredOrder:
    """An order addressed to `node` ("" the meeting's owner)."""
    return StoredOrder(0, order.meeting_id, kind_of(order), encode(order), node)


async def relink_orders(uow: UnitOfWork, meeting_id: str, dead_home: str, owner: str) -> None:
    """A take-over by `owner` of a meeting other servers span (service/calls.py): each of
    them, and the new owner (once, if it was one of them), is told its home moved."""
    servers = [server for server in await uow.spans.servers(meeting_id) if server != owner]
    if servers or await uow.spans.remove(meeting_id, owner):
        relink = RelinkServer(meeting_id, dead_home, PRODUCTION)
        await uow.orders.add([_stored(relink, node) for node in ["", *servers]], time.time())
