"""The account balance: `POST /201612/sid/{accountSID}/account/getBlance.wx`, action
`queryBlance` (the misspellings are the real platform's).

The answer is the envelope plus `"AccountSID"` and `"Blance"`, a JSON number written with exactly
two decimals (`7.08`, `0.00`, `-1.50`).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import orjson

FUNC = "account"
GET_BALANCE = "getBlance.wx"
QUERY_BALANCE = "queryBlance"

ACCOUNT_SID_FIELD = "AccountSID"
BALANCE_FIELD = "Blance"

#: What an account whose billing is off (no balance) shows: a balance no client would warn about
#: or refuse to call with (decision, docs/api.md).
UNLIMITED_BALANCE = Decimal("99999999.99")

CENT = Decimal("0.01")


def cents(amount: Decimal | float | int | str) -> Decimal:
    """An amount of money rounded half up to whole cents (floats through their shortest text,
    so `0.06` is 0.06, not 0.059999…)."""
    value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def balance_fields(account_sid: str, balance: Decimal | float | None) -> dict[str, Any]:
    """`{"AccountSID": sid, "Blance": 12.30}` for the envelope; `balance` None: billing is off."""
    shown = UNLIMITED_BALANCE if balance is None else cents(balance) + 0  # never "-0.00"
    return {ACCOUNT_SID_FIELD: account_sid, BALANCE_FIELD: orjson.Fragment(str(shown).encode())}
