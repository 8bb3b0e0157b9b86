"""`telemeeting account topup | update | show`: balances, prices, credit limits and the ledger."""

from __future__ import annotations

from tests.servers import cli_json, run_cli


def test_topup_show_and_update(sqlite_db: str) -> None:
    sid = cli_json("account", "create", "--balance", "10", "--name", "客户", db=sqlite_db)["sid"]
    assert cli_json("account", "topup", sid, "5.5", "--by", "alice", db=sqlite_db) == {
        "sid": sid,
        "balance": 15.5,
    }
    assert cli_json("account", "topup", sid, "-0.25", db=sqlite_db)["balance"] == 15.25
    shown = cli_json("account", "show", sid, db=sqlite_db)
    assert shown["billing"] is True and shown["balance"] == 15.25
    assert (shown["price_per_unit"], shown["price_is_default"], shown["unit_seconds"]) == (
        0.06,
        True,
        60,
    )
    assert shown["credit_limit"] == 0.0 and shown["live_calls"] == 0
    assert shown["available"] == 15.25 and shown["cdrs"] == 0
    ledger = shown["ledger"]  # newest first
    assert [(row["reason"], row["amount"], row["balance_after"]) for row in ledger] == [
        ("topup", -0.25, 15.25),
        ("topup", 5.5, 15.5),
        ("opening", 10.0, 10.0),
    ]
    assert ledger[1]["actor"] == "alice"

    updated = cli_json(
        "account", "update", sid, "--price-per-unit", "0.1", "--credit-limit", "20", db=sqlite_db
    )
    assert (updated["price_per_unit"], updated["price_is_default"]) == (0.1, False)
    assert updated["credit_limit"] == 20.0 and updated["available"] == 35.25
    default = cli_json("account", "update", sid, "--default-price", db=sqlite_db)
    assert default["price_is_default"] is True

    human = run_cli("account", "show", sid, db=sqlite_db).stdout
    assert "15.25" in human and "opening" in human and "客户" in human


def test_billing_on_and_off(sqlite_db: str) -> None:
    sid = cli_json("account", "create", db=sqlite_db)["sid"]
    assert cli_json("account", "show", sid, db=sqlite_db)["billing"] is False
    # A top-up turns billing on, from 0.
    assert cli_json("account", "topup", sid, "3", db=sqlite_db)["balance"] == 3.0
    off = cli_json("account", "update", sid, "--billing", "off", db=sqlite_db)
    assert off["billing"] is False and off["balance"] is None
    on = cli_json("account", "update", sid, "--billing", "on", db=sqlite_db)
    assert on["billing"] is True and on["balance"] == 0.0
    reasons = [row["reason"] for row in on["ledger"]]
    assert reasons == ["billing_on", "billing_off", "topup", "billing_on"]
    assert sum(row["amount"] for row in on["ledger"]) == 0.0  # the ledger sums to the balance


def test_billing_mistakes_exit_with_a_message(sqlite_db: str) -> None:
    sid = cli_json("account", "create", "--balance", "1", db=sqlite_db)["sid"]
    unknown = run_cli("account", "topup", "f" * 32, "5", db=sqlite_db, check=False)
    assert unknown.returncode == 1 and "no account" in unknown.stderr
    not_money = run_cli("account", "topup", sid, "lots", db=sqlite_db, check=False)
    assert not_money.returncode == 1 and "not an amount" in not_money.stderr
    zero = run_cli("account", "topup", sid, "0", db=sqlite_db, check=False)
    assert zero.returncode == 1
    negative = run_cli("account", "update", sid, "--credit-limit", "-1", db=sqlite_db, check=False)
    assert negative.returncode == 1 and "credit limit" in negative.stderr
    bad_switch = run_cli("account", "update", sid, "--billing", "maybe", db=sqlite_db, check=False)
    assert bad_switch.returncode == 2
    missing = run_cli("account", "show", "f" * 32, db=sqlite_db, check=False)
    assert missing.returncode == 1 and "no account" in missing.stderr
