"""`AsyncClient`: the asyncio SDK, one method per action of the contract."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import date, datetime
from types import TracebackType
from typing import Any, Self
from zoneinfo import ZoneInfo

import httpx

from telemeeting.client._calls import (
    Call,
    Calls,
    RetryPolicy,
    cdr_page,
    meeting_events_page,
    single,
)
from telemeeting.client.models import (
    Accepted,
    Balance,
    CallRecord,
    CdrCursor,
    CreatedMeeting,
    Meeting,
    MeetingEvent,
    PartyLike,
)
from telemeeting.wire import actions as wa


class AsyncClient:
    """Talks to a ytx-compatible server (the real platform, or `telemeeting serve`).

    Credentials not given fall back to the environment (`TELEMEETING_ACCOUNT_SID`,
    `TELEMEETING_AUTH_TOKEN`, `TELEMEETING_APP_ID`, `TELEMEETING_BASE_URL`). The sandbox is just
    another `base_url`. Use it as an async context manager, or await `aclose()`.
    """

    def __init__(
        self,
        account_sid: str | None = None,
        auth_token: str | None = None,
        app_id: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | httpx.Timeout = 10.0,
        retries: int = 2,
        backoff: float = 0.25,
        timezone: ZoneInfo | str = "Asia/Shanghai",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._calls = Calls(
            account_sid, auth_token, app_id, base_url, timezone, RetryPolicy(retries, backoff)
        )
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)

    @property
    def base_url(self) -> str:
        return self._calls.base_url

    @property
    def app_id(self) -> str:
        return self._calls.app_id

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(self, call: Call) -> dict[str, Any]:
        attempt = 0
        while True:
            url, headers, body = self._calls.request(call)
            try:
                return self._calls.envelope(
                    await self._http.post(url, content=body, headers=headers)
                )
            except Exception as error:
                if not self._calls.may_retry(call, error, attempt):
                    raise self._calls.transport_error(error) from error
            await asyncio.sleep(self._calls.retry.delay(attempt))
            attempt += 1

    # ---- actions -------------------------------------------------------------------------------

    async def create_meeting(
        self,
        meeting_name: str | None = None,
        *,
        creator: str | None = None,
        parties: Iterable[PartyLike] | None = None,
        confid: str | None = None,
        srcclid: str | None = None,
        dstclid: str | None = None,
        shownumber: str | None = None,
        book_time: datetime | str | None = None,
        max_members: int | None = None,
        custom_parm: str | None = None,
        idempotency_key: str | None = None,
        record: bool | None = None,
        beep: int | None = None,
        end_on_creator_leave: bool | None = None,
        speaker_events: bool | None = None,
        dialin: bool | None = None,
        pin: str | None = None,
    ) -> CreatedMeeting:
        """createMeeting; `book_time` books it (dialling starts then) instead of starting now."""
        envelope = await self._send(
            self._calls.create_meeting(
                meeting_name=meeting_name,
                creator=creator,
                parties=parties,
                confid=confid,
                srcclid=srcclid,
                dstclid=dstclid,
                shownumber=shownumber,
                book_time=book_time,
                max_members=max_members,
                custom_parm=custom_parm,
                idempotency_key=idempotency_key,
                record=record,
                beep=beep,
                end_on_creator_leave=end_on_creator_leave,
                speaker_events=speaker_events,
                dialin=dialin,
                pin=pin,
            )
        )
        return CreatedMeeting.from_envelope(envelope)

    async def invite(
        self,
        meid: str,
        parties: Iterable[PartyLike] | PartyLike,
        *,
        custom_parm: str | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        """inviteJoinMeeting: dial `parties` into the meeting; nothing is dialled on error."""
        call = self._calls.invite(meid, single(parties), custom_parm, idempotency_key)
        return Accepted((await self._send(call))["requestId"])

    async def destroy_meeting(self, meid: str, *, idempotency_key: str | None = None) -> Accepted:
        """destroyMeeting: cancel ringing legs, hang up everyone, end the meeting."""
        call = self._calls.on_meeting(wa.DESTROY_MEETING, meid, idempotency_key)
        return Accepted((await self._send(call))["requestId"])

    async def query_meeting(self, meid: str) -> Meeting:
        """queryMeeting: the meeting's state and each leg's."""
        envelope = await self._send(self._calls.query_meeting(meid))
        return Meeting.from_wire(envelope.get("meeting") or {}, self._calls.zone)

    async def mute_member(
        self, meid: str, phone: str, *, idempotency_key: str | None = None
    ) -> Accepted:
        call = self._calls.on_member(wa.MUTE_MEMBER, meid, phone, idempotency_key)
        return Accepted((await self._send(call))["requestId"])

    async def unmute_member(
        self, meid: str, phone: str, *, idempotency_key: str | None = None
    ) -> Accepted:
        call = self._calls.on_member(wa.UNMUTE_MEMBER, meid, phone, idempotency_key)
        return Accepted((await self._send(call))["requestId"])

    # ---- in-call media (**extensions**, issue 14) --------------------------------------------

    async def start_recording(self, meid: str, *, idempotency_key: str | None = None) -> Accepted:
        """startMeetingRecording: record the meeting's mix (MeetingError -101 if it records)."""
        call = self._calls.on_meeting(wa.START_RECORDING, meid, idempotency_key)
        return Accepted((await self._send(call))["requestId"])

    async def stop_recording(self, meid: str, *, idempotency_key: str | None = None) -> Accepted:
        """stopMeetingRecording: the recording becomes an MP3 (see Meeting.recordings)."""
        call = self._calls.on_meeting(wa.STOP_RECORDING, meid, idempotency_key)
        return Accepted((await self._send(call))["requestId"])

    async def mute_all(self, meid: str, *, idempotency_key: str | None = None) -> Accepted:
        """muteAllMeetingMembers: everyone but the creator."""
        call = self._calls.on_meeting(wa.MUTE_ALL, meid, idempotency_key)
        return Accepted((await self._send(call))["requestId"])

    async def unmute_all(self, meid: str, *, idempotency_key: str | None = None) -> Accepted:
        call = self._calls.on_meeting(wa.UNMUTE_ALL, meid, idempotency_key)
        return Accepted((await self._send(call))["requestId"])

    async def hold_member(
        self, meid: str, phone: str, *, idempotency_key: str | None = None
    ) -> Accepted:
        """holdMeetingMember: music on hold; neither hears nor is heard."""
        call = self._calls.on_member(wa.HOLD_MEMBER, meid, phone, idempotency_key)
        return Accepted((await self._send(call))["requestId"])

    async def unhold_member(
        self, meid: str, phone: str, *, idempotency_key: str | None = None
    ) -> Accepted:
        call = self._calls.on_member(wa.UNHOLD_MEMBER, meid, phone, idempotency_key)
        return Accepted((await self._send(call))["requestId"])

    async def play_prompt(
        self,
        meid: str,
        *,
        text: str | None = None,
        url: str | None = None,
        phone: str | None = None,
        loop: bool = False,
        idempotency_key: str | None = None,
    ) -> Accepted:
        """playMeetingPrompt: `text` (spoken) or `url` (a WAV), to everyone or to `phone`."""
        call = self._calls.play_prompt(meid, text, url, phone, loop, idempotency_key)
        return Accepted((await self._send(call))["requestId"])

    async def stop_prompt(
        self, meid: str, *, phone: str | None = None, idempotency_key: str | None = None
    ) -> Accepted:
        """stopMeetingPrompt: silence the prompts playing to `phone`, or every prompt (a
        looping one included)."""
        call = self._calls.stop_prompt(meid, phone, idempotency_key)
        return Accepted((await self._send(call))["requestId"])

    async def kick_member(
        self, meid: str, phone: str, *, idempotency_key: str | None = None
    ) -> Accepted:
        call = self._calls.on_member(wa.KICK_MEMBER, meid, phone, idempotency_key)
        return Accepted((await self._send(call))["requestId"])

    async def meeting_events(
        self, meid: str, *, after: int = 0, limit: int = 100
    ) -> list[MeetingEvent]:
        """queryMeetingEvents: up to `limit` events with `seq > after`, in order."""
        envelope = await self._send(self._calls.meeting_events(meid, after, limit))
        zone = self._calls.zone
        return [MeetingEvent.from_wire(e, zone) for e in meeting_events_page(envelope)]

    async def iter_meeting_events(
        self, meid: str, *, after: int = 0, page_size: int = 100
    ) -> AsyncIterator[MeetingEvent]:
        """Every event after `after`, fetching pages as needed."""
        while True:
            page = await self.meeting_events(meid, after=after, limit=page_size)
            for event in page:
                yield event
            if len(page) < page_size:
                return
            after = page[-1].seq

    # ---- the account ---------------------------------------------------------------------------

    async def balance(self) -> Balance:
        """getBlance (queryBlance): the account's balance now."""
        return Balance.from_wire(await self._send(self._calls.balance()))

    async def cdrs(self, after: CdrCursor | str = "0", *, limit: int = 100) -> list[CallRecord]:
        """getCdrByResId: up to `limit` CDRs written after `after` (a cursor, or a requestid;
        "0": from the first), oldest first."""
        cursor = after if isinstance(after, CdrCursor) else CdrCursor(after)
        call = self._calls.cdrs_after(cursor.request_id, limit, cursor.called)
        return self._records(await self._send(call))

    async def cdrs_of_request(self, request_id: str) -> list[CallRecord]:
        """getCdrByResId with limit 0: the CDRs of one request (one per leg that has ended)."""
        return self._records(await self._send(self._calls.cdrs_after(request_id, 0, None)))

    async def cdrs_in_hour(self, day: date | str, hour: int) -> list[CallRecord]:
        """getCdrByTime: the CDRs written during `hour` (0-23) of `day`, in the platform's zone."""
        return self._records(await self._send(self._calls.cdrs_in_hour(day, hour)))

    async def iter_cdrs(
        self, after: CdrCursor | str = "0", *, page_size: int = 100
    ) -> AsyncIterator[CallRecord]:
        """Every CDR after `after`, fetching pages as needed; it stops at the last one written
        so far (`CdrCursor.after(record)` resumes after `record` later)."""
        cursor = after if isinstance(after, CdrCursor) else CdrCursor(after)
        while True:
            page = await self.cdrs(cursor, limit=page_size)
            for record in page:
                yield record
            if len(page) < page_size:
                return
            cursor = CdrCursor.after(page[-1])

    def _records(self, envelope: dict[str, Any]) -> list[CallRecord]:
        return [CallRecord.from_wire(r, self._calls.zone) for r in cdr_page(envelope)]
