"""`dump` serializes with orjson and gives the bytes the standard library gave (spec §1, §4)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telemeeting.wire.envelope import dump, envelope
from telemeeting.wire.status import Status


def stdlib(body: Any) -> bytes:
    """What `dump` was before orjson."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _plain_float(value: float) -> bool:
    """Floats that Python prints without an exponent (the one documented difference)."""
    return "e" not in repr(value)


texts = st.text(st.characters(exclude_categories=["Cs"]))  # any code point but lone surrogates
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False).filter(_plain_float)
    | texts
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner) | st.dictionaries(texts, inner), max_leaves=30
)


@given(extra=st.dictionaries(texts.filter(lambda k: k not in envelope(Status.OK)), values))
def test_bytes_equal_the_standard_librarys(extra: dict[str, Any]) -> None:
    body = envelope(Status.OK, "20261128143015000000000000001", **extra)
    assert dump(body) == stdlib(body)


@pytest.mark.parametrize(
    "text", ["张三", "\x00\x1f\x7f\t\n\r\b\f", '"\\/', "\u2028\u2029", "😀", "\ufeff"]
)
def test_unicode_and_escapes_as_before(text: str) -> None:
    body = envelope(Status.INVALID_PARAMETER, name=text, nested={"list": [text]})
    assert dump(body) == stdlib(body)


def test_chinese_is_not_escaped() -> None:
    raw = dump(envelope(Status.MEETING_NOT_FOUND))
    assert raw == '{"statusCode":"-300","statusMsg":"会议不存在","requestId":""}'.encode()


def test_what_orjson_refuses_goes_the_old_way() -> None:
    for body in ({"k": {1: "int key"}}, {"k": 2**64}):
        assert dump(body) == stdlib(body)
    with pytest.raises(UnicodeEncodeError):  # as before: a lone surrogate is not UTF-8
        dump({"k": "\ud800"})


def test_float_exponents_are_the_only_difference() -> None:
    assert json.loads(dump({"amount": 1e16})) == {"amount": 1e16}
    assert dump({"amount": 0.0}) == stdlib({"amount": 0.0}) == b'{"amount":0.0}'
