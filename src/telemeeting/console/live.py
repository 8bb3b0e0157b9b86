"""Live meeting pages over Server-Sent Events.

The stream polls the database, not this process's memory: the meeting's calls may be carried
by a media node in another process or on another machine, and the database is what they all
write. Who may watch is checked once, when the stream opens; then each poll is two reads (the
meeting with its legs, its events), and an update is sent only when the rendered members or
events changed, so a browser sees a change within `POLL_SECONDS` plus its own render time.

A stream ends by itself after `STREAM_SECONDS` (EventSource reconnects at once): no connection
outlives a server shutdown by long, and a session ended meanwhile is noticed on reconnect.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from telemeeting.console.actions import ConsoleActions
from telemeeting.console.pages import members_of
from telemeeting.console.web import Context
from telemeeting.domain.model import Meeting, MeetingState
from telemeeting.store.records import App

log = structlog.get_logger(__name__)

POLL_SECONDS = 0.25
STREAM_SECONDS = 55.0
KEEPALIVE_SECONDS = 15.0
#: How long EventSource waits before reconnecting (milliseconds).
RETRY_MILLISECONDS = 500

EventsOf = Callable[[Context, str], Awaitable[list[dict[str, object]]]]


class LiveMeeting:
    def __init__(self, actions: ConsoleActions, events_of: EventsOf) -> None:
        self._actions = actions
        self._events_of = events_of

    async def stream(self, request: Request, ctx: Context) -> Response:
        meeting_id = request.path_params["meeting_id"]
        app, meeting = await self._actions.meeting(ctx.user, meeting_id)  # 404 before it starts
        return StreamingResponse(
            self._updates(request, ctx, app, meeting),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _updates(
        self, request: Request, ctx: Context, app: App, first: Meeting
    ) -> AsyncIterator[str]:
        yield f"retry: {RETRY_MILLISECONDS}\n\n"
        started = last_sent = time.monotonic()
        previous = ""
        meeting_id, meid = first.id, first.meid
        while time.monotonic() - started < STREAM_SECONDS:
            try:
                meeting = await self._actions.read_meeting(app, meid, meeting_id)
                events = await self._events_of(ctx, meeting_id)
            except Exception:  # the database is away: end; EventSource reconnects
                log.warning("console.live_read_failed", meeting_id=meeting_id, exc_info=True)
                return
            update = json.dumps(
                {
                    "state": meeting.state.value,
                    "stateLabel": ctx._(meeting.state.value),
                    "members": ctx.fragment(
                        "_members.html", meeting=meeting, members=members_of(meeting)
                    ),
                    "events": ctx.fragment("_events.html", events=events),
                },
                ensure_ascii=False,
            )
            if update != previous:
                previous = update
                last_sent = time.monotonic()
                yield f"event: meeting\ndata: {update}\n\n"
            elif time.monotonic() - last_sent > KEEPALIVE_SECONDS:
                last_sent = time.monotonic()
                yield ": keep-alive\n\n"
            if meeting.state is MeetingState.ENDED or await request.is_disconnected():
                return
            await asyncio.sleep(POLL_SECONDS)
