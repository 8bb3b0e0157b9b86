"""The JSON response envelope: `statusCode, statusMsg, requestId, ...` in that order (spec §4)."""

from __future__ import annotations

import json
from typing import Any

import orjson

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
    """Compact UTF-8 JSON with Chinese kept readable, as the real platform answers.

    Serialized once, by orjson: the same bytes as `json.dumps(body, ensure_ascii=False,
    separators=(",", ":"))` (key order, escapes of `"`, `\\` and control characters, non-ASCII
    and U+2028/U+2029 raw), except that a float printed in exponent form drops the `+` and the
    leading zero (`1e16`, not `1e+16`; `0.00001`, not `1e-05`), which no answer of ours contains.
    What orjson refuses (keys that are not strings, integers beyond 64 bits, lone surrogates)
    takes the standard library's path, as before.
    """
    try:
        return orjson.dumps(body)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
