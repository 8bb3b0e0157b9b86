"""Phone numbers (spec §6.2): optional `+`, 3-20 digits, optional `,extension` of 0-9*#."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telemeeting.wire.phones import Phone, parse_phone

ASCII_DIGITS = "0123456789"


@pytest.mark.parametrize(
    ("text", "number", "extension"),
    [
        ("13800138000", "13800138000", ""),
        ("01053889900", "01053889900", ""),
        ("+8613800138000", "+8613800138000", ""),
        ("01053889900,1234", "01053889900", "1234"),
        ("01053889900,*#09", "01053889900", "*#09"),
        ("01053889900,#", "01053889900", "#"),
        ("01053889900," + "1" * 16, "01053889900", "1" * 16),
        ("110", "110", ""),
        ("+123", "+123", ""),
        ("9" * 20, "9" * 20, ""),
        ("+" + "9" * 20, "+" + "9" * 20, ""),
    ],
)
def test_valid_phones(text, number, extension):
    phone = parse_phone(text)
    assert phone == Phone(number, extension)
    assert phone.wire == text


@pytest.mark.parametrize(
    "text",
    [
        "150****0804",  # the seed's masked number
        "136****7556",
        "188****6401",
        "",
        "12",  # too short
        "+12",
        "9" * 21,  # too long
        "+" + "9" * 21,
        "1380013800a",
        "abc",
        "phone",
        "++8613800138000",
        "8613800138000+",
        "138 0013 8000",
        "138-0013-8000",
        "(010)53889900",
        "01053889900,",  # empty extension
        "01053889900,1234,5",
        "01053889900,12a",
        "01053889900,+1",
        "01053889900," + "1" * 17,  # extension too long
        ",1234",
        " 13800138000",
        "13800138000 ",
    ],
)
def test_invalid_phones(text):
    assert parse_phone(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "13800138000\n",  # `$` matches before a trailing newline
        "１３８００１３８０００",  # fullwidth digits match `\d`
        "١٣٨٠٠١٣٨٠٠٠",  # Arabic-Indic digits match `\d`
        "01053889900,١٢٣",
    ],
)
def test_only_ascii_digits_and_nothing_after(text):
    """Spec §6.2 and the docstring: digits means 0-9; these are not dialable numbers."""
    assert parse_phone(text) is None


def test_phone_wire_form():
    assert Phone("01053889900", "1234").wire == "01053889900,1234"
    assert Phone("13800138000").wire == "13800138000"


@given(
    plus=st.booleans(),
    digits=st.text(alphabet=ASCII_DIGITS, min_size=3, max_size=20),
    ext=st.one_of(st.just(""), st.text(alphabet="0123456789*#", min_size=1, max_size=16)),
)
def test_every_well_formed_phone_parses_and_round_trips(plus, digits, ext):
    text = ("+" if plus else "") + digits + ("," + ext if ext else "")
    phone = parse_phone(text)
    assert phone is not None
    assert phone.number == ("+" if plus else "") + digits
    assert phone.extension == ext
    assert phone.wire == text


@given(st.text(max_size=40))
def test_anything_accepted_is_well_formed(text):
    phone = parse_phone(text)
    if phone is None:
        return
    number = phone.number.removeprefix("+")
    assert 3 <= len(number) <= 20
    assert set(number) <= set(ASCII_DIGITS)
    assert len(phone.extension) <= 16
    assert set(phone.extension) <= set("0123456789*#")
    assert phone.wire == text
