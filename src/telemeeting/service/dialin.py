"""Dial-in (issue 15): admitting a caller who keyed a meeting number and PIN, and the IVR's
prompts.

Admission is one transaction on the meeting's row: the PIN is compared in constant time, the
meeting must be open and carried by this node, or (with `span_servers`) owned by another live
server that this one then links to (issue 16: the caller's leg is recorded as this server's,
`legs.node`), and there must be room (maxmembers). The admitted caller is a leg in
`callin` (pushed as CallState `callin`, 呼入); the media node reports it answered once it joins
the mix, so the application sees callin → answer → disconnect, and one `Call` CDR with
`direction` "in".

Guessing PINs: each call gets three tries (the IVR), and a meeting number that collects
`GUESS_LIMIT` wrong PINs within `GUESS_WINDOW_SECONDS` accepts no PIN at all until the window has
passed (the callers hear "wrong"), so redialling does not make guessing a 4-digit PIN practical.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import structlog

from telemeeting.config import Settings
from telemeeting.domain import errors
from telemeeting.domain.model import MeetingState
from telemeeting.service import prompts
from telemeeting.service.changes import ChangeRecorder
from telemeeting.service.directory import Directory
from telemeeting.store.dialin import DialInRepository
from telemeeting.store.repositories import NO_LEGS
from telemeeting.store.unit_of_work import Database
from telemeeting.telephony.dialin import Admission, AdmitRequest
from telemeeting.telephony.ivr.machine import Prompt, Verdict
from telemeeting.wire.request_id import RequestIdGenerator

log = structlog.get_logger(__name__)

#: What the IVR says, by language (spoken by espeak-ng: Mandarin by its cmn voice).
PROMPT_TEXTS: dict[str, dict[Prompt, str]] = {
    "zh": {
        Prompt.ENTER_MEETING: "欢迎参加电话会议。请输入会议号，并以井号键结束。",
        Prompt.ENTER_PIN: "请输入会议密码，并以井号键结束。",
        Prompt.WRONG: "会议号或密码错误。",
        Prompt.TOO_MANY_TRIES: "输入错误次数过多，再见。",
        Prompt.NOT_STARTED: "会议尚未开始，请稍后再拨。再见。",
        Prompt.MEETING_FULL: "会议人数已满，再见。",
        Prompt.UNAVAILABLE: "暂时无法加入会议，请稍后再拨。再见。",
        Prompt.GOODBYE: "没有收到输入，再见。",
    },
    "en": {
        Prompt.ENTER_MEETING: "Welcome. Please enter the meeting number, followed by the hash key.",
        Prompt.ENTER_PIN: "Please enter the meeting PIN, followed by the hash key.",
        Prompt.WRONG: "The meeting number or PIN is not correct.",
        Prompt.TOO_MANY_TRIES: "Too many wrong attempts. Goodbye.",
        Prompt.NOT_STARTED: "This meeting has not started yet. Please call again later. Goodbye.",
        Prompt.MEETING_FULL: "The meeting is full. Goodbye.",
        Prompt.UNAVAILABLE: "The meeting cannot be joined now. Please call again later. Goodbye.",
        Prompt.GOODBYE: "No input was received. Goodbye.",
    },
}

#: Wrong PINs a meeting number may collect within the window before it refuses every PIN.
GUESS_LIMIT = 20
GUESS_WINDOW_SECONDS = 600.0
#: Meeting numbers whose wrong PINs are remembered (then the oldest are forgotten).
_GUESSES_KEPT = 10_000

#: Asked inside the admission's transaction: may this meeting be mixed where the call is?
HostCheck = Callable[[str], bool]


async def render_prompts(settings: Settings) -> dict[str, str]:
    """The IVR's prompts as files (service/prompts.py, rendered once and cached by text), for
    the media processes; {} when espeak-ng is missing (the IVR then plays silence)."""
    directory = Path(settings.recordings.directory).resolve() / "prompts"
    texts = PROMPT_TEXTS[settings.sip.ivr_language]
    files: dict[str, str] = {}
    for prompt, text in texts.items():
        try:
            files[prompt.value] = str(await prompts.speak(text, directory))
        except errors.InvalidRequest as exc:
            log.warning("dialin.prompt_not_rendered", prompt=prompt.value, error=str(exc))
    return files


def _anywhere(_meeting_id: str) -> bool:
    return True


class DialIn:
    def __init__(
        self,
        db: Database,
        node_id: str,
        recorder: ChangeRecorder,
        directory: Directory,
        clock: Callable[[], float],
        request_ids: RequestIdGenerator,
    ) -> None:
        self._db = db
        self._node_id = node_id
        self._recorder = recorder
        self._directory = directory
        self._clock = clock
        self._request_ids = request_ids
        #: Admit callers of meetings another server owns: the meeting is then extended to this
        #: server (issue 16, service/spans.py). Off: they hear "unavailable".
        self.span_servers = False
        #: Meeting number → when its recent wrong PINs were keyed (this process's callers).
        self._guesses: dict[str, deque[float]] = {}

    async def admit(self, request: AdmitRequest, host_ok: HostCheck = _anywhere) -> Admission:
        try:
            return await self._admit(request, host_ok)
        except Exception:
            log.exception("dialin.admit_failed", meid=request.meid)
            return Admission(Verdict.UNAVAILABLE)

    def _guessed_too_often(self, meid: str) -> bool:
        recent = self._guesses.get(meid)
        if recent is None:
            return False
        while recent and recent[0] < self._clock() - GUESS_WINDOW_SECONDS:
            recent.popleft()
        return len(recent) >= GUESS_LIMIT

    def _wrong(self, meid: str) -> Admission:
        if len(self._guesses) >= _GUESSES_KEPT and meid not in self._guesses:
            self._guesses.pop(next(iter(self._guesses)))
        recent = self._guesses.setdefault(meid, deque())
        recent.append(self._clock())
        if len(recent) == GUESS_LIMIT:
            log.warning("dialin.pin_guessing", meid=meid, wrong=GUESS_LIMIT)
        return Admission(Verdict.WRONG)

    async def _admit(self, request: AdmitRequest, host_ok: HostCheck) -> Admission:
        if self._guessed_too_often(request.meid):
            return Admission(Verdict.WRONG)
        async with self._db.reader() as uow:
            candidates = await DialInRepository(uow.connection).open_meetings(request.meid)
        for meeting_id in candidates:
            async with self._db.unit_of_work() as uow:
                meeting = await uow.meetings.get(meeting_id, NO_LEGS)
                if meeting is None or not meeting.dialin or meeting.state is MeetingState.ENDED:
                    continue
                if not secrets.compare_digest(meeting.pin.encode(), request.pin.encode()):
                    continue
                if meeting.state is MeetingState.BOOKED:
                    return Admission(Verdict.NOT_STARTED)
                owner = uow.meetings.owner_of(meeting.id)
                remote = owner != self._node_id
                if (remote and not (self.span_servers and owner)) or not host_ok(meeting.id):
                    log.warning("dialin.other_node", meeting_id=meeting.id, owner=owner)
                    return Admission(Verdict.UNAVAILABLE)
                now = self._clock()
                request_id = self._request_ids.next(datetime.fromtimestamp(now, UTC))
                try:
                    leg = meeting.admit_caller(
                        request.caller, request.called, request_id=request_id, now=now
                    )
                except errors.MeetingFull:
                    return Admission(Verdict.FULL)
                if remote:  # the call is here: its orders come here (issue 16), and the
                    # meeting spans this server from now on (its end of the link comes later)
                    uow.meetings.place_leg(leg.id, self._node_id)
                    await uow.spans.add(meeting.id, self._node_id, "", 0, now)
                app = await self._directory.app(meeting.app_id)
                await self._recorder.record(uow, meeting, app, now=now)
            log.info("dialin.admitted", meeting_id=meeting.id, leg_id=leg.id)
            return Admission(Verdict.ADMITTED, meeting.id, leg.id, leg.muted)
        return self._wrong(request.meid)
