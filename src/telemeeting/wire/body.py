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
# Where a seed-style parties value starts: `"parties"`, optional spaces, `:`, spaces, `"[`.
# Anchored at a literal and free of nested quantifiers, so a search is linear in the body.
_PARTIES_START = re.compile(r'"parties"[ \t\r\n]*:[ \t\r\n]*"(?=\[)')
_SPACE = " \t\r\n"


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
    repaired = _repair_parties(text)
    if repaired is not None:
        try:
            return _loads(repaired)
        except (ValueError, RecursionError):
            pass
    raise WireError(Status.INVALID_JSON, "body is not valid JSON")


def _repair_parties(text: str) -> str | None:
    """Quote each seed-style parties array properly, in one forward pass (linear time).

    The array runs from its `[` to the first `]"` that is followed (after spaces) by `,` or `}`,
    as the seed writes it. A backtracking regular expression did the same in quadratic time:
    60 KB of `"parties":"[` held the event loop for 3.9 s.
    """
    out: list[str] = []
    position = 0
    while (start := _PARTIES_START.search(text, position)) is not None:
        array_start = start.end()  # at the `[`
        end = _array_end(text, array_start)
        if end is None:
            break
        out.append(text[position : array_start - 1])  # up to, without, the opening quote
        out.append(json.dumps(text[array_start:end], ensure_ascii=False))
        position = end + 1  # after the closing quote
    if not out:
        return None
    out.append(text[position:])
    return "".join(out)


def _array_end(text: str, array_start: int) -> int | None:
    """The index of the `"` closing a seed-style array that starts at `array_start`."""
    search_from = array_start
    while (bracket := text.find(']"', search_from)) != -1:
        after = bracket + 2
        while after < len(text) and text[after] in _SPACE:
            after += 1
        if after < len(text) and text[after] in ",}":
            return bracket + 1
        search_from = bracket + 1
    return None
