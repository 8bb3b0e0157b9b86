"""The lenient request-body parser of spec §5.

Bodies are JSON in UTF-8 whatever the Content-Type says. The one repair we make is for the seed's
own example, whose `parties` string embeds the array without escaping its inner quotes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from telemeeting.wire.status import Status, WireError

MAX_BODY_BYTES = 64 * 1024
_BOM = b"\xef\xbb\xbf"
# "parties": "[ ... ]" followed by the next member or the end of the object.
_UNESCAPED_PARTIES = re.compile(r'("parties"\s*:\s*)"(\[.*?\])"(\s*[,}])', re.DOTALL)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads(text: str) -> Any:
    """Strict JSON: NaN and Infinity, which Python would accept, are refused."""
    return json.loads(text, parse_constant=_no_constants)


def parse_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or WireError(-4 / -101)."""
    if len(raw) > MAX_BODY_BYTES:
        raise WireError(Status.INVALID_PARAMETER, "body over 64 KiB")
    if raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError(Status.INVALID_JSON, "body is not UTF-8") from exc
    try:
        body = _loads(text)
    except RecursionError as exc:  # nesting deeper than any request could mean
        raise WireError(Status.INVALID_JSON, "body nested too deeply") from exc
    except ValueError:
        body = _parse_seed_style(text)
    if not isinstance(body, dict):
        raise WireError(Status.INVALID_JSON, "body is not a JSON object")
    return body


def _parse_seed_style(text: str) -> Any:
    """Understand `"parties":"[{"name":…}]"` (unescaped inner quotes); nothing else is repaired."""
    repaired, count = _UNESCAPED_PARTIES.subn(
        lambda m: m.group(1) + json.dumps(m.group(2), ensure_ascii=False) + m.group(3), text
    )
    if count:
        try:
            return _loads(repaired)
        except (ValueError, RecursionError):
            pass
    raise WireError(Status.INVALID_JSON, "body is not valid JSON")
