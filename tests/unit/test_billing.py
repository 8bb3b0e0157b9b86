"""Billing arithmetic, the balance and CDR-pull wire formats, and the routing table (no I/O)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

import orjson
import pytest

from telemeeting.client.models import Balance, CdrCursor
from telemeeting.service.billing import Tariff, may_dial, run_out_at, used_so_far
from telemeeting.store.records import Account, App
from telemeeting.wire import account, cdr
from telemeeting.wire.endpoints import actions_at
from telemeeting.wire.envelope import dump, envelope
from telemeeting.wire.status import Status, WireError

TWO_SECONDS = Tariff(2, Decimal("0.50"))
SHANGHAI = ZoneInfo("Asia/Shanghai")


# ---- charges -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "units"), [(0, 0), (1, 1), (60, 1), (61, 2), (119, 2), (120, 2), (121, 3)]
)
def test_units_are_started_units_of_answered_time(seconds: int, units: int) -> None:
    assert Tariff(60, Decimal("0.06")).units(seconds) == units


def test_a_charge_is_units_times_price_in_whole_cents() -> None:
    tariff = Tariff(60, Decimal("0.06"))
    assert tariff.charge(61, tariff.price(None)) == Decimal("0.12")
    assert tariff.charge(30, tariff.price(0.015)) == Decimal("0.02")  # 0.015 rounds half up
    assert tariff.charge(0, tariff.price(None)) == Decimal("0.00")
    assert tariff.price(0.1) == Decimal("0.1")  # an account's own price wins


def _account(balance: float | None, credit: float = 0.0) -> Account:
    return Account("s", "t", "", True, balance, 0.0, None, credit)


def _app(env: str) -> App:
    return App("a", "s", env, "", "", "", True, "meeting", "", 0.0)


@pytest.mark.parametrize(
    ("balance", "credit", "env", "allowed"),
    [
        (None, 0.0, "production", True),  # billing off
        (0.0, 0.0, "production", False),
        (-0.5, 0.0, "production", False),
        (0.01, 0.0, "production", True),
        (0.0, 10.0, "production", True),  # postpaid
        (-10.0, 10.0, "production", False),
        (0.0, 0.0, "sandbox", True),  # sandbox is free
    ],
)
def test_who_may_dial(balance: float | None, credit: float, env: str, allowed: bool) -> None:
    assert may_dial(_account(balance, credit), _app(env)) is allowed


# ---- when money runs out -----------------------------------------------------------------------


def test_two_units_of_money_last_four_seconds_of_one_call() -> None:
    price = Decimal("0.50")
    money = Decimal("1.00")
    answered = [1000.0]
    # Early on nothing is due within the horizon; from 3.5 s on, the cut-off at 4.0 s is.
    assert run_out_at(TWO_SECONDS, price, money, answered, False, 1000.2, 0.6) is None
    assert run_out_at(TWO_SECONDS, price, money, answered, False, 1003.0, 0.6) is None
    assert run_out_at(TWO_SECONDS, price, money, answered, False, 1003.5, 0.6) == 1004.0
    # Hung up at 4.0 s, the call's CDR says 4 s: 2 units, exactly the money.
    assert TWO_SECONDS.charge(4, price) == money


def test_two_calls_share_the_money() -> None:
    price = Decimal("0.50")
    # 3 units: call A (answered at 0) starts units at 0.5 and 2.5; B (at 1) at 1.5: the 4th
    # unit (A's at 4.5, B's at 3.5) is B's, so both are cut at 3.0.
    due = run_out_at(TWO_SECONDS, price, Decimal("1.50"), [0.0, 1.0], False, 2.8, 0.6)
    assert due == 3.0
    used = used_so_far(TWO_SECONDS, price, [0.0, 1.0], 3.0)
    assert used == Decimal("1.50")


def test_no_money_at_all_ends_ringing_calls_at_once() -> None:
    price = Decimal("0.50")
    assert run_out_at(TWO_SECONDS, price, Decimal("0.00"), [], True, 5.0, 0.6) == 5.0
    assert run_out_at(TWO_SECONDS, price, Decimal("0.40"), [], True, 5.0, 0.6) == 5.0
    assert run_out_at(TWO_SECONDS, price, Decimal("0.50"), [], True, 5.0, 0.6) is None
    assert run_out_at(TWO_SECONDS, price, Decimal("-1.00"), [4.0], False, 5.0, 0.6) == 5.0


def test_a_free_price_never_runs_out() -> None:
    assert run_out_at(TWO_SECONDS, Decimal("0"), Decimal("0"), [0.0], True, 100.0, 0.6) is None


# ---- getBlance ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("balance", "text"),
    [(7.08, b"7.08"), (5, b"5.00"), (0.0, b"0.00"), (-1.5, b"-1.50"), (-0.001, b"0.00")],
)
def test_blance_is_a_number_with_two_decimals(balance: float, text: bytes) -> None:
    body = dump(envelope(Status.OK, "1", **account.balance_fields("sid", balance)))
    assert body.endswith(b'"requestId":"1","AccountSID":"sid","Blance":' + text + b"}")
    assert orjson.loads(body)["Blance"] == float(text)


def test_billing_off_shows_the_unlimited_balance() -> None:
    fields = account.balance_fields("sid", None)
    shown = Balance.from_wire(orjson.loads(dump(fields)))
    assert shown.balance == Decimal("99999999.99")
    assert shown.unlimited
    assert not Balance.from_wire({"AccountSID": "s", "Blance": 7.08}).unlimited
    assert Balance.from_wire({"AccountSID": "s", "Blance": 7.08}).balance == Decimal("7.08")


# ---- CallCdr -----------------------------------------------------------------------------------


def test_cdr_by_request_parameters() -> None:
    first = cdr.parse_cdrs_after({"lastresid": "0", "limit": "50"})
    assert first.from_start and first.limit == 50 and not first.lookup
    lookup = cdr.parse_cdrs_after({"lastresid": "2026", "limit": 0})
    assert lookup.lookup and lookup.last_called is None
    exact = cdr.parse_cdrs_after({"lastresid": "2026", "lastcalled": "13800138000"})
    assert exact.limit == cdr.DEFAULT_LIMIT and exact.last_called == "13800138000"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "-2"),
        ({"lastresid": "0", "limit": 0}, "-101"),
        ({"lastresid": "1", "limit": 1001}, "-101"),
        ({"lastresid": "1", "limit": -1}, "-101"),
        ({"lastresid": "1", "limit": "ten"}, "-101"),
    ],
)
def test_bad_cdr_by_request_parameters(body: dict[str, object], code: str) -> None:
    with pytest.raises(WireError) as caught:
        cdr.parse_cdrs_after(body)
    assert caught.value.status.code == code


def test_cdr_by_time_takes_both_date_formats_in_the_platform_zone() -> None:
    for text in ("20261128", "2026-11-28"):
        hour = cdr.parse_cdrs_in_hour({"pdate": text, "ptime": "9"})
        assert hour.day == date(2026, 11, 28) and hour.hour == 9
        start, end = hour.window(SHANGHAI)
        assert end - start == 3600
        assert start == 1795827600.0  # 2026-11-28 09:00 +08:00


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"ptime": 1}, "-2"),
        ({"pdate": "20261128"}, "-2"),
        ({"pdate": "2026-1128", "ptime": 1}, "-101"),
        ({"pdate": "20261328", "ptime": 1}, "-101"),
        ({"pdate": "20261128", "ptime": 24}, "-101"),
    ],
)
def test_bad_cdr_by_time_parameters(body: dict[str, object], code: str) -> None:
    with pytest.raises(WireError) as caught:
        cdr.parse_cdrs_in_hour(body)
    assert caught.value.status.code == code


def test_cursor_after_a_record() -> None:
    from telemeeting.client.models import CallRecord

    record = CallRecord.from_wire({"requestid": "r1", "called": "138"})
    assert CdrCursor.after(record) == CdrCursor("r1", "138")


# ---- routing -----------------------------------------------------------------------------------


def test_the_paths_and_their_actions() -> None:
    assert actions_at("201612", "account", "getBlance.wx") == {"queryBlance"}
    assert actions_at("201512", "call", "CallCdr.wx") == {"getCdrByResId", "getCdrByTime"}
    assert actions_at("201612", "call", "CallCdr.wx") == {"getCdrByResId", "getCdrByTime"}
    assert actions_at("201512", "account", "getBlance.wx") is None
    assert actions_at("201512", "call", "TeleMeeting.wx") is None
    assert actions_at("201612", "call", "TeleMeeting.wx") is not None
