"""The JSON response envelope: `statusCode, statusMsg, requestId, ...` in that order (spec §4)."""

from __future__ import annotations

import json
from typing import Any

from telemeeting.wire.status import Status

CONTENT_TYPE = "application/json;charset=utf-8"


def envelope(status: Status, request_id: str = "", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "statusCode": status.code,
        "statusMsg": status.message,
        "requestId": request_id,
    }
    body.update(extra)
    return body


def dump(body: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON with Chinese kept readable, as the real platform answers."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
