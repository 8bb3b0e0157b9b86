"""`GET /recordings/{id}.mp3?expires=E&sig=S`: a finished recording, to whoever holds a link.

The link is the credential (service/recordings.py signs it): 403 for a missing, wrong or
expired signature, 404 for an unknown recording or one whose MP3 is not written yet (still
recording). Range requests are served (206) by Starlette's FileResponse.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

from telemeeting.service.recordings import RecordingLinks
from telemeeting.store.recordings import RecordingRepository
from telemeeting.store.unit_of_work import Database
from telemeeting.telephony.media.recorder import finished

#: The route's path (a Starlette pattern).
PATH = "/recordings/{name}"
_NAME = re.compile(r"([0-9a-f]{32})\.mp3")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


class RecordingDownload:
    def __init__(
        self, db: Database, links: RecordingLinks, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = db
        self._links = links
        self._clock = clock

    async def respond(self, request: Request) -> Response:
        match = _NAME.fullmatch(request.path_params.get("name", ""))
        if match is None:
            return PlainTextResponse("not found", status_code=404)
        recording_id = match[1]
        expires = request.query_params.get("expires", "")
        sig = request.query_params.get("sig", "")
        if not _SIGNATURE.fullmatch(sig) or not self._links.valid(
            recording_id, expires, sig, self._clock()
        ):
            return PlainTextResponse("forbidden: missing, wrong or expired signature", 403)
        async with self._db.reader() as uow:
            recording = await RecordingRepository(uow.connection).get(recording_id)
        wav = Path(recording.path) if recording is not None else None
        if wav is None or finished(wav) is None:
            return PlainTextResponse("not found (or still recording)", status_code=404)
        return FileResponse(
            wav.with_suffix(".mp3"),
            media_type="audio/mpeg",
            filename=f"{recording_id}.mp3",
            headers={"Cache-Control": "private, max-age=3600"},
        )
