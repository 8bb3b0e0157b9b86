"""Scalar parameters as strings or numbers (spec §5), and the -2 / -101 distinction."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telemeeting.wire.params import integer, json_list, required, scalar
from telemeeting.wire.status import Status, WireError


def _status(fn, *args, **kwargs) -> Status:
    with pytest.raises(WireError) as info:
        fn(*args, **kwargs)
    return info.value.status


# ---- scalar ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("abc", "abc"),
        ("  padded  ", "padded"),
        (13800138000, "13800138000"),
        (0, "0"),
        (-5, "-5"),
        (12.0, "12"),
        (1e3, "1000"),
        (2.5, "2.5"),
        ("中文", "中文"),
    ],
)
def test_scalar_accepts_strings_and_numbers(value, text):
    assert scalar({"p": value}, "p") == text


@pytest.mark.parametrize("body", [{}, {"p": None}, {"p": ""}, {"p": "   "}, {"q": "x"}])
def test_scalar_absent_or_empty_is_none(body):
    assert scalar(body, "p") is None


@pytest.mark.parametrize("value", [True, False, {}, {"a": 1}, [], ["x"]])
def test_scalar_rejects_non_scalars(value):
    assert _status(scalar, {"p": value}, "p") is Status.INVALID_PARAMETER


def test_scalar_first_present_name_wins():
    assert scalar({"A": "first", "a": "second"}, "A", "a") == "first"
    assert scalar({"a": "second"}, "A", "a") == "second"
    assert scalar({"A": None, "a": "second"}, "A", "a") == "second"


def test_scalar_max_len_is_inclusive_and_counts_characters():
    assert scalar({"p": "字" * 4}, "p", max_len=4) == "字" * 4
    assert _status(scalar, {"p": "字" * 5}, "p", max_len=4) is Status.INVALID_PARAMETER


def test_scalar_max_len_applies_to_numbers():
    assert _status(scalar, {"p": 12345}, "p", max_len=4) is Status.INVALID_PARAMETER


@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_scalar_integers_and_their_text_agree(n):
    assert scalar({"p": n}, "p") == scalar({"p": str(n)}, "p") == str(n)


# ---- required -------------------------------------------------------------------------------


def test_required_returns_value():
    assert required({"confid": "002"}, "confid") == "002"
    assert required({"confid": 2}, "confid") == "2"


@pytest.mark.parametrize("body", [{}, {"confid": None}, {"confid": ""}, {"confid": "  "}])
def test_required_missing_is_minus_2(body):
    status = _status(required, body, "confid")
    assert status is Status.MISSING_PARAMETER
    assert status.code == "-2"


def test_required_wrong_type_is_minus_101():
    assert _status(required, {"confid": ["x"]}, "confid").code == "-101"


def test_required_too_long_is_minus_101():
    assert _status(required, {"p": "xxx"}, "p", max_len=2).code == "-101"


# ---- integer --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [("1", 1), (5, 5), ("1000", 1000), (7.0, 7), (" 9 ", 9)]
)
def test_integer_accepts(value, expected):
    assert integer({"n": value}, "n", low=1, high=1000) == expected


def test_integer_absent_is_none():
    assert integer({}, "n", low=1, high=10) is None
    assert integer({"n": ""}, "n", low=1, high=10) is None


@pytest.mark.parametrize("value", ["0", 0, "1001", -1, "abc", "1.5", 1.5, "1e3", True, [1]])
def test_integer_rejects(value):
    assert _status(integer, {"n": value}, "n", low=1, high=1000) is Status.INVALID_PARAMETER


@given(st.integers(min_value=-50, max_value=50))
def test_integer_range_is_inclusive(n):
    if 0 <= n <= 10:
        assert integer({"n": n}, "n", low=0, high=10) == n
    else:
        assert _status(integer, {"n": n}, "n", low=0, high=10) is Status.INVALID_PARAMETER


# ---- json_list ------------------------------------------------------------------------------


def test_json_list_array():
    assert json_list({"parties": [{"phone": "1"}]}, "parties") == [{"phone": "1"}]


def test_json_list_string_holding_array():
    assert json_list({"parties": '[{"phone":"1"}]'}, "parties") == [{"phone": "1"}]


@pytest.mark.parametrize("body", [{}, {"parties": None}, {"parties": ""}])
def test_json_list_absent_is_none(body):
    assert json_list(body, "parties") is None


def test_json_list_empty_array_is_empty():
    assert json_list({"parties": []}, "parties") == []
    assert json_list({"parties": "[]"}, "parties") == []


@pytest.mark.parametrize(
    "value", ["not json", "{}", '{"phone":"1"}', "null", "5", {"phone": "1"}, 5, True]
)
def test_json_list_rejects_non_arrays(value):
    assert _status(json_list, {"parties": value}, "parties") is Status.INVALID_PARAMETER
