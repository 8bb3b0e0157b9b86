"""The `telemeeting` command: serve, and the operator's account and app management."""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import json
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from telemeeting import logs
from telemeeting.client import cli as client_commands
from telemeeting.client.cli import client_cli
from telemeeting.config import Settings, load_settings
from telemeeting.service import accounts, admin
from telemeeting.store import outbox
from telemeeting.store.unit_of_work import Database
from telemeeting.wire import actions as wa
from telemeeting.wire.auth import signed_headers
from telemeeting.wire.endpoints import CALL, VERSION, path
from telemeeting.wire.environments import ENVIRONMENTS, PRODUCTION, SANDBOX
from telemeeting.wire.times import format_wire_time

T = TypeVar("T")

cli = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
account_cli = typer.Typer(no_args_is_help=True, help="Manage accounts.")
app_cli = typer.Typer(no_args_is_help=True, help="Manage apps.")
cli.add_typer(account_cli, name="account")
cli.add_typer(app_cli, name="app")
callbacks_cli = typer.Typer(no_args_is_help=True, help="Inspect and redeliver status pushes.")
cli.add_typer(callbacks_cli, name="callbacks")
cli.add_typer(client_cli, name="client")
operator_cli = typer.Typer(no_args_is_help=True, help="Manage web console operators.")
cli.add_typer(operator_cli, name="operator")
recordings_cli = typer.Typer(no_args_is_help=True, help="Meeting recordings.")
cli.add_typer(recordings_cli, name="recordings")
console = Console()
errors = Console(stderr=True)

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL [env TELEMEETING_DB_URL; default ./telemeeting.db]"),
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML config file [env TELEMEETING_CONFIG]")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object, for scripts.")]


def _settings(config: Path | None, db: str | None, **server: Any) -> Settings:
    try:
        return load_settings(
            config,
            database={"url": db or os.environ.get("TELEMEETING_DB_URL")},
            server=server,
        )
    except (FileNotFoundError, ValueError) as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _with_database(
    config: Path | None, db: str | None, work: Callable[[Database], Awaitable[T]]
) -> T:
    """Run `work` against a migrated database; operator mistakes exit 1 with a clear message."""
    settings = _settings(config, db)

    async def run() -> T:
        database = Database(settings.database.url)
        try:
            await database.migrate()
            return await work(database)
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except admin.AdminError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc


def _show(record: Any, as_json: bool, title: str) -> None:
    values = dataclasses.asdict(record)
    if as_json:
        typer.echo(json.dumps(values, ensure_ascii=False))
        return
    console.print(f"[bold]{title}[/bold]")
    for key, value in values.items():
        console.print(f"  {key:<14} {value}")


# ---- accounts ---------------------------------------------------------------------------------


@account_cli.command("create")
def account_create(
    sid: Annotated[str | None, typer.Option(help="Account SID (default: random 32 hex)")] = None,
    token: Annotated[str | None, typer.Option(help="Auth token (default: random)")] = None,
    name: Annotated[str, typer.Option(help="A label for people")] = "",
    balance: Annotated[
        float | None,
        typer.Option(help="Prepaid balance (billed); omit for billing off (unlimited, no -204)"),
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an account (the accountSID and authToken that clients sign with)."""
    account = _with_database(
        config,
        db,
        lambda d: admin.create_account(d, sid=sid, token=token, name=name, balance=balance),
    )
    _show(account, as_json, "account created")


@account_cli.command("disable")
def account_disable(
    sid: str, db: DbOption = None, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Disable an account: its requests get -201 from now on."""
    account = _with_database(config, db, lambda d: admin.set_account_enabled(d, sid, False))
    _show(account, as_json, "account disabled")


@account_cli.command("enable")
def account_enable(
    sid: str, db: DbOption = None, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Enable a disabled account again."""
    account = _with_database(config, db, lambda d: admin.set_account_enabled(d, sid, True))
    _show(account, as_json, "account enabled")


ByOption = Annotated[
    str, typer.Option("--by", help="Who makes the change, for the ledger [default: your login]")
]


def _operator(by: str) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


@account_cli.command("topup", context_settings={"ignore_unknown_options": True})
def account_topup(
    sid: str,
    amount: Annotated[str, typer.Argument(help="Amount to add (e.g. 50 or 12.30; -5 removes)")],
    by: ByOption = "",
    db: DbOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add to an account's balance (a ledger row); prints the new balance. An account without a
    balance (billing off) starts being billed, from 0."""
    balance = _with_database(config, db, lambda d: accounts.top_up(d, sid, amount, _operator(by)))
    if as_json:
        typer.echo(json.dumps({"sid": sid, "balance": balance}))
    else:
        console.print(f"balance of {sid}: [bold]{balance:.2f}[/bold]")


@account_cli.command("update")
def account_update(
    sid: str,
    price_per_unit: Annotated[
        float | None, typer.Option("--price-per-unit", help="Price per billing unit")
    ] = None,
    default_price: Annotated[
        bool, typer.Option("--default-price", help="Use [billing] price_per_unit again")
    ] = False,
    credit_limit: Annotated[
        float | None,
        typer.Option("--credit-limit", help="How far below 0 the balance may go (0: prepaid)"),
    ] = None,
    billing: Annotated[
        str | None, typer.Option("--billing", help="on: bill from a balance of 0; off: stop")
    ] = None,
    by: ByOption = "",
    db: DbOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change an account's price per unit, credit limit, or whether it is billed."""
    if billing not in (None, "on", "off"):
        errors.print("[red]error:[/red] --billing is on or off")
        raise typer.Exit(2)
    if price_per_unit is not None and default_price:
        errors.print("[red]error:[/red] give --price-per-unit or --default-price, not both")
        raise typer.Exit(2)
    settings = _settings(config, db)

    async def work(database: Database) -> accounts.AccountBilling:
        await accounts.update_billing(
            database,
            sid,
            price_per_unit=price_per_unit,
            default_price=default_price,
            credit_limit=credit_limit,
            billing=None if billing is None else billing == "on",
            actor=_operator(by),
        )
        return await accounts.account_billing(database, settings, sid)

    _show_billing(_with_database(config, db, work), as_json, "account updated", settings.zone)


@account_cli.command("show")
def account_show(
    sid: str,
    ledger: Annotated[int, typer.Option(help="How many of the latest ledger rows to show")] = 5,
    db: DbOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """An account's balance, price, credit limit, live calls and latest ledger rows."""
    settings = _settings(config, db)
    view = _with_database(
        config, db, lambda d: accounts.account_billing(d, settings, sid, max(0, ledger))
    )
    _show_billing(view, as_json, "account", settings.zone)


def _show_billing(view: accounts.AccountBilling, as_json: bool, title: str, zone: ZoneInfo) -> None:
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(view), ensure_ascii=False))
        return
    money = "billing off" if view.balance is None else f"{view.balance:.2f}"
    price = f"{view.price_per_unit:.2f} per {view.unit_seconds} s"
    console.print(f"[bold]{title}[/bold] {view.sid} {view.name}")
    console.print(f"  balance        {money}")
    console.print(f"  price          {price}{' (default)' if view.price_is_default else ''}")
    console.print(f"  credit limit   {view.credit_limit:.2f}")
    console.print(f"  live calls     {view.live_calls} ({view.live_calls_production} production)")
    if view.available is not None:
        console.print(f"  used by them   {view.live_usage:.2f}")
        console.print(f"  available      {view.available:.2f}")
    console.print(f"  CDRs           {view.cdrs}, charged {view.cdr_charges:.2f}")
    if view.ledger:
        table = Table(f"at ({zone.key})", "amount", "balance after", "reason", "by", "reference")
        for row in view.ledger:
            after = row["balance_after"]
            table.add_row(
                format_wire_time(row["at"], zone),
                f"{row['amount']:+.2f}",
                "-" if after is None else f"{after:.2f}",
                row["reason"],
                row["actor"],
                row["reference"],
            )
        console.print(table)


# ---- apps -------------------------------------------------------------------------------------

_TIMEZONE_HELP = (
    "IANA zone (e.g. America/New_York) its clients' booktime is in; "
    "empty: inferred from each request's Authorization timestamp"
)


@app_cli.command("create")
def app_create(
    account: Annotated[str, typer.Option("--account", help="The owning account's SID")],
    env: Annotated[str, typer.Option("--env", help="production or sandbox")],
    appid: Annotated[str | None, typer.Option("--appid", help="App id (default: random)")] = None,
    name: Annotated[str, typer.Option(help="A label for people")] = "",
    callback_url: Annotated[str, typer.Option("--callback-url", help="Status push URL")] = "",
    ip_whitelist: Annotated[
        str, typer.Option("--ip-whitelist", help='Allowed callers, e.g. "1.2.3.4,10.0.0.0/8"')
    ] = "",
    offline: Annotated[bool, typer.Option("--offline", help="Create it not yet online")] = False,
    features: Annotated[str, typer.Option(help="Comma-separated features")] = "meeting",
    caller_id: Annotated[str, typer.Option("--caller-id", help="Default caller ID shown")] = "",
    timezone: Annotated[str, typer.Option("--timezone", help=_TIMEZONE_HELP)] = "",
    db: DbOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an app in one environment (production apps work once online)."""
    if env not in ENVIRONMENTS:
        errors.print("[red]error:[/red] --env must be production or sandbox")
        raise typer.Exit(2)
    app = _with_database(
        config,
        db,
        lambda d: admin.create_app(
            d,
            account_sid=account,
            env=env,
            appid=appid,
            name=name,
            callback_url=callback_url,
            ip_whitelist=ip_whitelist,
            online=not offline,
            features=features,
            caller_id=caller_id,
            timezone=timezone,
        ),
    )
    _show(app, as_json, "app created")


@app_cli.command("update")
def app_update(
    appid: str,
    callback_url: Annotated[str | None, typer.Option("--callback-url")] = None,
    ip_whitelist: Annotated[str | None, typer.Option("--ip-whitelist")] = None,
    online: Annotated[
        bool | None, typer.Option("--online/--offline", help="Put the app online or offline")
    ] = None,
    features: Annotated[str | None, typer.Option()] = None,
    caller_id: Annotated[str | None, typer.Option("--caller-id")] = None,
    timezone: Annotated[str | None, typer.Option("--timezone", help=_TIMEZONE_HELP)] = None,
    db: DbOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change an app's callback URL, whitelist, features, time zone or online state."""
    app = _with_database(
        config,
        db,
        lambda d: admin.update_app(
            d,
            appid,
            callback_url=callback_url,
            ip_whitelist=ip_whitelist,
            online=online,
            features=features,
            caller_id=caller_id,
            timezone=timezone,
        ),
    )
    _show(app, as_json, "app updated")


# ---- callbacks --------------------------------------------------------------------------------


@callbacks_cli.command("list")
def callbacks_list(
    app: Annotated[str | None, typer.Option("--app", help="Only this app's events")] = None,
    state: Annotated[
        str | None, typer.Option("--state", help="pending, dead, delivered or stored")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, oldest first")] = 1000,
    db: DbOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List stored pushes with their delivery state, attempts and last error."""
    if state and state not in outbox.STATES:
        errors.print(f"[red]error:[/red] --state must be one of {', '.join(outbox.STATES)}")
        raise typer.Exit(2)

    async def work(database: Database) -> list[outbox.EventSummary]:
        async with database.unit_of_work() as uow:
            return await uow.outbox.list(app, state, limit)

    events = _with_database(config, db, work)
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(e) for e in events], ensure_ascii=False))
        return
    table = Table("event id", "app", "seq", "kind", "state", "attempts", "last error")
    for event in events:
        table.add_row(
            event.id,
            event.app_id,
            str(event.seq),
            event.kind,
            event.delivery,
            str(event.attempts),
            event.last_error,
        )
    console.print(table)
    console.print(f"{len(events)} event(s)")


@cli.command("nodes")
def nodes_list(
    include_stale: Annotated[
        bool, typer.Option("--all", help="Also nodes whose lease has expired")
    ] = False,
    db: DbOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the running nodes: roles, address, heartbeat age, meetings, calls and orders owned."""
    settings = _settings(config, db)
    now = time.time()
    since = 0.0 if include_stale else now - settings.cluster.lease_seconds

    async def work(database: Database) -> list[Any]:
        async with database.reader() as uow:
            return await uow.nodes.live(since)

    found = _with_database(config, db, work)
    rows = [
        {
            **dataclasses.asdict(node),
            "heartbeat_age_seconds": round(max(0.0, now - node.heartbeat_at), 1),
            "live": now - node.heartbeat_at <= settings.cluster.lease_seconds,
        }
        for node in found
    ]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("node", "roles", "address", "heartbeat", "meetings", "calls", "orders pending")
    for row in rows:
        age = f"{row['heartbeat_age_seconds']} s ago" + ("" if row["live"] else " (expired)")
        table.add_row(
            row["id"],
            row["roles"],
            row["address"],
            age,
            str(row["meetings"]),
            str(row["calls"]),
            str(row["orders"]),
        )
    console.print(table)
    console.print(f"{len(rows)} node(s)")


@callbacks_cli.command("redeliver")
def callbacks_redeliver(
    event_id: Annotated[str | None, typer.Argument(help="The event to send again")] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Every dead event")] = False,
    app: Annotated[str | None, typer.Option("--app", help="Only this app's events")] = None,
    db: DbOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Queue an event, or every dead one, for delivery again (a running server sends it)."""
    if bool(event_id) == all_dead:
        errors.print("[red]error:[/red] give either an EVENT_ID or --all-dead")
        raise typer.Exit(2)

    async def work(database: Database) -> int:
        async with database.unit_of_work() as uow:
            return await uow.outbox.redeliver(time.time(), event_id=event_id, app_id=app)

    count = _with_database(config, db, work)
    if event_id and count == 0:
        errors.print(f"[red]error:[/red] no pushable event {event_id}")
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps({"requeued": count}))
    else:
        console.print(f"{count} event(s) queued for delivery")


# ---- console operators (issue 13) ---------------------------------------------------------------


def _operator_row(operator: Any) -> dict[str, Any]:
    """An operator for printing: never its password hash."""
    return {"name": operator.name, "enabled": operator.enabled, "created_at": operator.created_at}


@operator_cli.command("create")
def operator_create(
    name: str,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from standard input"),
    ] = False,
    db: DbOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a console operator (sees and manages every account); asks for the password
    unless --password-stdin is given."""
    from telemeeting.console.operators import create_operator

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    operator = _with_database(
        config, db, lambda d: create_operator(d, name, password, _operator(""))
    )
    if as_json:
        typer.echo(json.dumps(_operator_row(operator)))
    else:
        console.print(f"operator {operator.name} created")


@operator_cli.command("disable")
def operator_disable(
    name: str, db: DbOption = None, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Disable an operator: their console sessions end at once."""
    from telemeeting.console.operators import set_operator_enabled

    operator = _with_database(
        config, db, lambda d: set_operator_enabled(d, name, False, _operator(""))
    )
    if as_json:
        typer.echo(json.dumps(_operator_row(operator)))
    else:
        console.print(f"operator {operator.name} disabled")


@operator_cli.command("list")
def operator_list(
    db: DbOption = None, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """List console operators."""
    from telemeeting.console.operators import all_operators

    found = _with_database(config, db, all_operators)
    rows = [_operator_row(operator) for operator in found]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table("name", "enabled", "created")
    for row in rows:
        created = datetime.fromtimestamp(row["created_at"], UTC).isoformat(timespec="seconds")
        table.add_row(row["name"], str(row["enabled"]), created)
    console.print(table)


# ---- demo -------------------------------------------------------------------------------------


# ---- recordings -------------------------------------------------------------------------------


@recordings_cli.command("purge")
def recordings_purge(
    db: DbOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete recordings older than [recordings] retention_days (rows and files), and encode to
    MP3 the WAVs a crashed media process left behind."""
    from telemeeting.service.recordings import purge

    settings = _settings(config, db)

    async def work(database: Database) -> Any:
        return await purge(database, settings)

    result = _with_database(config, db, work)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(result)))
        return
    console.print(
        f"{result.deleted} recording(s) deleted, {result.encoded} left-over WAV(s) encoded"
    )


@cli.command()
def prune(
    days: Annotated[
        float | None,
        typer.Option(min=0, help="Keep ended meetings this many days [retention] (0: keep all)"),
    ] = None,
    batch: Annotated[
        int | None, typer.Option(min=1, max=10000, help="Meetings per transaction")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count them")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove ended meetings older than [retention] ended_meetings_days: their legs, delivered
    pushes and leftover orders (the clock role does it every interval_seconds). CDRs and the
    ledger are kept; so are meetings with pushes still pending or recordings still kept."""
    from telemeeting.service.retention import Pruned, Retention, RetentionPolicy

    settings = _settings(config, db)
    kept = settings.retention
    policy = RetentionPolicy(
        kept.ended_meetings_days if days is None else days, batch or kept.batch
    )

    async def work(database: Database) -> tuple[int, Pruned | None]:
        retention = Retention(database, policy, time.time)
        prunable = await retention.pending()
        if dry_run or not prunable:
            return prunable, None if dry_run else Pruned()
        with Progress(console=errors, disable=as_json) as progress:
            task = progress.add_task("pruning ended meetings", total=prunable)
            done = await retention.prune(lambda b: progress.advance(task, b.meetings))
        return prunable, done

    prunable, done = _with_database(config, db, work)
    if as_json:
        extra = dataclasses.asdict(done) if done else {"dry_run": True}
        typer.echo(json.dumps({"days": policy.days, "prunable": prunable, **extra}))
    elif done is None:
        console.print(f"{prunable} meeting(s) ended more than {policy.days:g} day(s) ago")
    else:
        console.print(
            f"{done.meetings} meeting(s) pruned: {done.legs} leg(s), {done.events} push(es), "
            f"{done.delivery_attempts} delivery attempt(s), {done.orders} order(s)"
        )


@cli.command()
def demo(
    account_sid: client_commands.SidOption = None,
    auth_token: client_commands.TokenOption = None,
    app_id: client_commands.AppOption = None,
    base_url: client_commands.BaseUrlOption = client_commands.LOCAL_SANDBOX_URL,
    seconds: Annotated[float, typer.Option(help="Give up waiting after this long")] = 40.0,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Watch a meeting come alive on a running server (by default the local sandbox, with the
    demo account that `telemeeting serve` created in this directory's database)."""
    if not (account_sid and auth_token and app_id):
        found = _with_database(config, db, lambda d: admin.demo_credentials(d, SANDBOX))
        if found is None:
            errors.print(
                "[red]error:[/red] no credentials given and no demo account in the database; "
                "pass --account-sid, --auth-token and --app-id"
            )
            raise typer.Exit(2)
        account, app = found
        account_sid, auth_token, app_id = account.sid, account.auth_token, app.appid
    client_commands.demo(account_sid, auth_token, app_id, base_url, seconds)


# ---- serve ------------------------------------------------------------------------------------


def _listen(host: str, port: int, quiet: bool = False) -> socket.socket:
    """A listening socket; one that cannot bind exits 1 with a message (`quiet`: raises)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only for sockets
    # that say they are TCP; without it each keep-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if quiet:
            raise
        errors.print(f"[red]error:[/red] cannot listen on {host}:{port}: {exc.strerror}")
        raise typer.Exit(1) from exc
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def _provision_demo(db: Database, settings: Settings) -> None:
    """On an empty database: a demo account with a sandbox and an online production app."""
    await db.migrate()
    if not await admin.is_empty(db):
        return
    account = await admin.create_account(db, name=admin.DEMO_ACCOUNT_NAME)
    sandbox = await admin.create_app(db, account_sid=account.sid, env=SANDBOX, name="demo test app")
    production = await admin.create_app(
        db, account_sid=account.sid, env=PRODUCTION, name="demo production app"
    )
    _print_demo(settings, account.sid, account.auth_token, sandbox.appid, production.appid)


def _print_demo(settings: Settings, sid: str, token: str, sandbox: str, production: str) -> None:
    server = settings.server
    headers, sign = signed_headers(sid, token, datetime.now(UTC), settings.zone)
    where = path(VERSION, sid, CALL, wa.TELEMEETING)
    url = f"http://{server.host}:{server.sandbox_port}{where}"
    body = json.dumps(
        {
            "action": wa.CREATE_MEETING,
            "appid": sandbox,
            "meetingname": "demo",
            "parties": [{"name": "张三", "phone": "13800138000"}],
        },
        ensure_ascii=False,
    )
    console.print(
        "[bold green]Demo account created[/bold green] (first start on an empty database)"
    )
    console.print(f"  ACCOUNT SID     {sid}")
    console.print(f"  AUTH TOKEN      {token}")
    console.print(f"  sandbox app     {sandbox}   (http://{server.host}:{server.sandbox_port})")
    console.print(f"  production app  {production}   (http://{server.host}:{server.port})")
    console.print("Try it (the signature below is valid for 24 hours):")
    console.print(
        f"  curl -s -X POST '{url}?Sign={sign}' \\\n"
        f"    -H 'Content-Type: application/json;charset=utf-8' \\\n"
        f"    -H 'Authorization: {headers['Authorization']}' \\\n"
        f"    -d '{body}'",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


RolesOption = Annotated[
    str,
    typer.Option(
        "--roles",
        help="Roles this process runs, comma-separated: api, media, dispatcher, clock",
    ),
]


@cli.command()
def serve(
    db: DbOption = None,
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Listen address [127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Production listener port [8880]")] = None,
    sandbox_port: Annotated[int | None, typer.Option(help="Sandbox listener port [8881]")] = None,
    roles: RolesOption = "api,media,dispatcher,clock",
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=64, help="API processes on the same ports")
    ] = 1,
    no_demo: Annotated[
        bool, typer.Option("--no-demo", help="Do not create the demo account on first start")
    ] = False,
    log_json: Annotated[bool, typer.Option("--log-json", help="Logs as JSON lines")] = False,
    console_port: Annotated[
        int | None,
        typer.Option("--console-port", help="Web console port [8882; 0: no console]"),
    ] = None,
) -> None:
    """Run a node: by default every role (API listeners, carrier, callbacks, clock) in one."""
    from telemeeting.api.server import loop_factory
    from telemeeting.bootstrap import API, Platform, parse_roles
    from telemeeting.nodes import run_with_workers, serve_roles
    from telemeeting.telephony.driver import DriverError

    settings = _settings(config, db, host=host, port=port, sandbox_port=sandbox_port)
    logs.configure(json=log_json)
    try:
        role_set = parse_roles(roles)
    except ValueError as exc:
        errors.print(f"[red]error:[/red] --roles: {exc}")
        raise typer.Exit(2) from exc
    server_settings = settings.server
    sockets: list[socket.socket] = []
    if API in role_set:
        sockets.append(_listen(server_settings.host, server_settings.port))
        if server_settings.sandbox_port != server_settings.port:
            sockets.append(_listen(server_settings.host, server_settings.sandbox_port))
    # The web console (docs/console.md): its own listener, in the (first) API process only.
    settings = _console_settings(settings, console_port)
    console_sockets = []
    if API in role_set and settings.console.port:
        console_sockets.extend(_console_listener(settings, explicit=console_port is not None))

    def announce(platform: Platform, stack: str) -> None:
        loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
        listeners = (
            f"production on http://{server_settings.host}:{server_settings.port} and sandbox "
            f"on http://{server_settings.host}:{server_settings.sandbox_port}"
            if API in platform.roles
            else "no API listeners"
        )
        roles = ",".join(sorted(platform.roles))
        # With --workers the console is served by worker 1 only (nodes.run_with_workers).
        serves_console = workers == 1 or platform.node_id.endswith("/api1")
        if API in platform.roles and console_sockets and serves_console:
            host, port = settings.console.host, settings.console.port
            listeners += f"; web console on http://{host}:{port}/"
        console.print(
            f"telemeeting serving {listeners} (node {platform.node_id}, roles {roles}; "
            f"database {settings.database.url}; {loop} loop, {stack})",
            highlight=False,
        )

    def run(node_settings: Settings, node_roles: frozenset[str], node_sockets: list) -> None:
        with asyncio.Runner(loop_factory=loop_factory(node_settings.server)) as runner:
            try:
                runner.run(serve_roles(node_settings, node_roles, node_sockets, announce))
            except DriverError as exc:  # a taken SIP or RTP port: an operator's error
                errors.print(f"[red]error:[/red] {exc}")
                raise typer.Exit(1) from exc

    if not no_demo:
        asyncio.run(_with_demo(settings))
    if workers > 1 and API in role_set:
        run_with_workers(settings, role_set, sockets, workers, run, console_sockets)
    else:
        run(settings, role_set, sockets + console_sockets)


def _console_listener(settings: Settings, explicit: bool) -> list[socket.socket]:
    """The console's socket. A port the operator chose must be free (else exit 1); the default
    port taken (another server on this machine, a test's) only means no console here: the
    API does not depend on it."""
    host, port = settings.console.host, settings.console.port
    if explicit or "port" in settings.console.model_fields_set:
        return [_listen(host, port)]
    try:
        return [_listen(host, port, quiet=True)]
    except OSError as exc:
        errors.print(
            f"[yellow]warning:[/yellow] no web console: {host}:{port} is taken ({exc.strerror}); "
            "give --console-port another port"
        )
        return []


def _console_settings(settings: Settings, port: int | None) -> Settings:
    """`--console-port` over `[console] port`; a port of the API's own is refused."""
    if port is not None:
        if not 0 <= port <= 65535:
            errors.print("[red]error:[/red] --console-port must be 0-65535")
            raise typer.Exit(2)
        console_settings = settings.console.model_copy(update={"port": port})
        settings = settings.model_copy(update={"console": console_settings})
    chosen = settings.console.port
    if chosen and chosen in (settings.server.port, settings.server.sandbox_port):
        errors.print(
            f"[red]error:[/red] the console port {chosen} is an API port; "
            "give --console-port another (or 0 for no console)"
        )
        raise typer.Exit(2)
    return settings


async def _with_demo(settings: Settings) -> None:
    database = Database(settings.database.url)
    try:
        await _provision_demo(database, settings)
    finally:
        await database.dispose()


def main() -> None:
    cli()
