"""`telemeeting client …` (every action from a shell) and `telemeeting demo` (a meeting, live).

Both talk HTTP to a running server through the SDK, exactly as an application would; neither
touches the database. Credentials come from flags or the environment.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from telemeeting.client._calls import (
    ENV_ACCOUNT_SID,
    ENV_APP_ID,
    ENV_AUTH_TOKEN,
    ENV_BASE_URL,
)
from telemeeting.client._sync import Client
from telemeeting.client.errors import MeetingError, TeleMeetingError, TransportError
from telemeeting.client.models import (
    ALERTING,
    ANSWER,
    CALLIN,
    CALLOUT,
    DISCONNECT,
    CallRecord,
    CallState,
    CdrCursor,
    Meeting,
    MeetingEvent,
    MeetingStateChange,
    Party,
)

#: The sandbox listener of `telemeeting serve` with its defaults: simulated carrier, no pushes.
LOCAL_SANDBOX_URL = "http://127.0.0.1:8881"

client_cli = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Call a running telemeeting (or ytx) server through the Python SDK.",
)

SidOption = Annotated[
    str | None, typer.Option("--account-sid", envvar=ENV_ACCOUNT_SID, help="Account SID")
]
TokenOption = Annotated[
    str | None,
    typer.Option("--auth-token", envvar=ENV_AUTH_TOKEN, help="Auth token", show_default=False),
]
AppOption = Annotated[str | None, typer.Option("--app-id", envvar=ENV_APP_ID, help="App id")]
BaseUrlOption = Annotated[
    str,
    typer.Option(
        "--base-url", envvar=ENV_BASE_URL, help="Server base URL (the sandbox is another URL)"
    ),
]
TimeoutOption = Annotated[float, typer.Option("--timeout", help="Seconds per HTTP request")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")]
IdempotencyOption = Annotated[
    str | None,
    typer.Option("--idempotency-key", help="Repeat-safe key (header Idempotency-Key)"),
]
CustomParmOption = Annotated[
    str | None, typer.Option("--custom-parm", help="Echoed in every callback")
]

_STATE_STYLE = {
    CALLOUT: "yellow",
    CALLIN: "yellow",
    ALERTING: "bold yellow",
    ANSWER: "bold green",
    DISCONNECT: "red",
}


def _out() -> Console:
    """A console bound to the current stdout (so test runners that swap it capture us)."""
    return Console(highlight=False)


def _err() -> Console:
    return Console(stderr=True, highlight=False)


def _fail(error: TeleMeetingError, as_json: bool, base_url: str) -> typer.Exit:
    """Print the failure with its status code and return the exit to raise (code 1)."""
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "statusCode": error.status_code,
                    "statusMsg": error.status_msg,
                    "requestId": error.request_id,
                },
                ensure_ascii=False,
            )
        )
    if isinstance(error, TransportError):
        _err().print(
            f"[red]error:[/red] cannot talk to {base_url}: {error.status_msg}", markup=True
        )
    else:
        _err().print(
            f"[red]error {error.status_code}:[/red] {error.status_msg} "
            f"[dim]({type(error).__name__})[/dim]",
            markup=True,
        )
    return typer.Exit(1)


@contextmanager
def _client(
    sid: str | None,
    token: str | None,
    app: str | None,
    base_url: str,
    timeout: float,
    as_json: bool,
) -> Iterator[Client]:
    """A Client from flags/env; missing credentials exit 2, call failures exit 1."""
    given = {"--account-sid": sid, "--auth-token": token, "--app-id": app}
    envs = {
        "--account-sid": ENV_ACCOUNT_SID,
        "--auth-token": ENV_AUTH_TOKEN,
        "--app-id": ENV_APP_ID,
    }
    missing = [f"{flag} (or {envs[flag]})" for flag, value in given.items() if not value]
    if missing:
        _err().print(f"[red]error:[/red] missing {', '.join(missing)}", markup=True)
        raise typer.Exit(2)
    client = Client(sid, token, app, base_url, timeout=timeout)
    with client:
        try:
            yield client
        except TeleMeetingError as exc:
            raise _fail(exc, as_json, base_url) from exc


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False))


def _parse_party(text: str, muted: bool = False) -> Party:
    """`PHONE` or `NAME=PHONE`; the phone may carry `,extension`."""
    name, sep, phone = text.rpartition("=")
    return Party(phone=phone.strip(), name=name.strip() if sep else "", muted=muted)


def _time(moment: datetime | None) -> str:
    return moment.strftime("%H:%M:%S") if moment else ""


def _state(state: str) -> Text:
    return Text(state, style=_STATE_STYLE.get(state, ""))


def meeting_table(
    meeting: Meeting, title: str | None = None, notes: Mapping[str, str] | None = None
) -> Table:
    """One row per leg: who, what state, since when; `notes` adds a column keyed by phone."""
    table = Table(title=title or f"meeting {meeting.meid} · {meeting.state}", title_justify="left")
    columns = ["name", "phone", "state", "stateDesc", "joined", "left"]
    columns += ["carrier"] if notes is not None else ["muted"]
    speaking = any(member.speaking is not None for member in meeting.members)
    columns += ["speaking"] if speaking else []
    for column in columns:
        table.add_column(column, no_wrap=column in ("phone", "state", "joined", "left"))
    for member in meeting.members:
        cells: list[str | Text] = [
            member.name,
            f"{member.phone} (in)" if member.direction == "in" else member.phone,
            _state(member.state),
            member.state_desc,
            _time(member.join_time),
            _time(member.leave_time),
        ]
        if notes is not None:
            cells.append(Text(notes.get(member.phone, ""), style="dim"))
        else:
            flags = (("yes", member.muted), ("held", member.held))
            cells.append(", ".join(word for word, on in flags if on))
        if speaking:
            cells.append("talking" if member.speaking else "")
        table.add_row(*cells)
    return table


def _event_row(event: MeetingEvent) -> tuple[str, str, str, str, str]:
    """seq, type, who, what, when, for the events table."""
    typed = event.events[0] if event.events else None
    if isinstance(typed, CallState):
        who = f"{typed.name} {typed.phone}".strip()
        return (
            str(event.seq),
            event.type,
            who,
            f"{typed.state} {typed.state_desc}",
            _time(typed.timestamp),
        )
    if isinstance(typed, CallRecord):
        what = f"CDR {typed.state_desc}, {typed.duration} s"
        return str(event.seq), event.type, typed.called, what, _time(typed.end_time)
    if isinstance(typed, MeetingStateChange) and typed.state == "speakers":
        what = "talking: " + (", ".join(typed.speakers) or "nobody")
        return str(event.seq), event.type, typed.meid, what, _time(typed.timestamp)
    if isinstance(typed, MeetingStateChange):
        what = f"meeting {typed.state}" + (f" ({typed.reason})" if typed.reason else "")
        return str(event.seq), event.type, typed.meid, what, _time(typed.timestamp)
    return str(event.seq), event.type, "", json.dumps(event.body, ensure_ascii=False), ""


def events_table(events: list[MeetingEvent], title: str = "events") -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("seq", "type", "who", "what", "time"):
        table.add_column(column, no_wrap=column in ("seq", "type", "time"))
    for event in events:
        table.add_row(*_event_row(event))
    return table


# ---- client subcommands ------------------------------------------------------------------------


@client_cli.command("create-meeting")
def create_meeting(
    name: Annotated[str | None, typer.Argument(help="Meeting name (≤ 64 chars)")] = None,
    creator: Annotated[str | None, typer.Option(help="The chair's phone, dialled first")] = None,
    party: Annotated[
        list[str] | None, typer.Option("--party", help="PHONE or NAME=PHONE; repeatable")
    ] = None,
    muted_party: Annotated[
        list[str] | None,
        typer.Option("--muted-party", help="A party that joins muted; repeatable"),
    ] = None,
    record: Annotated[bool, typer.Option("--record", help="Record from the start")] = False,
    beep: Annotated[
        int | None, typer.Option(min=0, max=3, help="0 none, 1 join, 2 leave, 3 both")
    ] = None,
    end_on_creator_leave: Annotated[
        bool, typer.Option("--end-on-creator-leave", help="End when the creator hangs up")
    ] = False,
    speaker_events: Annotated[
        bool, typer.Option("--speaker-events", help="Push who is talking")
    ] = False,
    dialin: Annotated[
        bool, typer.Option("--dialin", help="Callers may dial in (meeting number and PIN)")
    ] = False,
    pin: Annotated[
        str | None, typer.Option(help="The dial-in PIN, 4-8 digits (default: made up)")
    ] = None,
    confid: Annotated[str | None, typer.Option(help="Room number you want")] = None,
    max_members: Annotated[int | None, typer.Option("--max-members")] = None,
    book_time: Annotated[
        str | None, typer.Option("--book-time", help="Book for yyyyMMddHHmmss instead")
    ] = None,
    srcclid: Annotated[str | None, typer.Option(help="Caller ID shown to the creator")] = None,
    dstclid: Annotated[str | None, typer.Option(help="Caller ID shown to parties")] = None,
    shownumber: Annotated[str | None, typer.Option(help="Caller ID overall")] = None,
    custom_parm: CustomParmOption = None,
    idempotency_key: IdempotencyOption = None,
    account_sid: SidOption = None,
    auth_token: TokenOption = None,
    app_id: AppOption = None,
    base_url: BaseUrlOption = LOCAL_SANDBOX_URL,
    timeout: TimeoutOption = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Create a meeting; prints its meid (pass it to the other commands)."""
    with _client(account_sid, auth_token, app_id, base_url, timeout, as_json) as client:
        parties = [_parse_party(p) for p in party or ()]
        parties += [_parse_party(p, muted=True) for p in muted_party or ()]
        created = client.create_meeting(
            name,
            creator=creator,
            parties=parties or None,
            record=record or None,
            beep=beep,
            end_on_creator_leave=end_on_creator_leave or None,
            speaker_events=speaker_events or None,
            dialin=dialin or pin is not None or None,
            pin=pin,
            confid=confid,
            max_members=max_members,
            book_time=book_time,
            srcclid=srcclid,
            dstclid=dstclid,
            shownumber=shownumber,
            custom_parm=custom_parm,
            idempotency_key=idempotency_key,
        )
    if as_json:
        answer: dict[str, object] = {"meid": created.meid, "requestId": created.request_id}
        if created.pin:
            answer.update(pin=created.pin, dialinnumbers=list(created.dialin_numbers))
        _echo_json(answer)
        return
    _out().print(
        f"meeting created: meid [bold]{created.meid}[/bold]  requestId {created.request_id}"
    )
    if created.pin:
        numbers = ", ".join(created.dialin_numbers) or "none configured"
        _out().print(f"dial in: call {numbers}, key {created.meid}# then PIN {created.pin}#")


@client_cli.command("invite")
def invite(
    meid: Annotated[str, typer.Argument(help="The meeting")],
    parties: Annotated[
        list[str], typer.Argument(help="PHONE or NAME=PHONE (PHONE may end with ,EXTENSION)")
    ],
    custom_parm: CustomParmOption = None,
    idempotency_key: IdempotencyOption = None,
    account_sid: SidOption = None,
    auth_token: TokenOption = None,
    app_id: AppOption = None,
    base_url: BaseUrlOption = LOCAL_SANDBOX_URL,
    timeout: TimeoutOption = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Dial parties into a meeting (nothing is dialled if any phone is invalid)."""
    with _client(account_sid, auth_token, app_id, base_url, timeout, as_json) as client:
        accepted = client.invite(
            meid,
            [_parse_party(p) for p in parties],
            custom_parm=custom_parm,
            idempotency_key=idempotency_key,
        )
    if as_json:
        _echo_json({"requestId": accepted.request_id})
        return
    _out().print(f"invited {len(parties)} party(ies): requestId {accepted.request_id}")


@client_cli.command("destroy")
def destroy(
    meid: Annotated[str, typer.Argument(help="The meeting")],
    idempotency_key: IdempotencyOption = None,
    account_sid: SidOption = None,
    auth_token: TokenOption = None,
    app_id: AppOption = None,
    base_url: BaseUrlOption = LOCAL_SANDBOX_URL,
    timeout: TimeoutOption = 10.0,
    as_json: JsonOption = False,
) -> None:
    """End a meeting: cancel ringing legs, hang up everyone."""
    with _client(account_sid, auth_token, app_id, base_url, timeout, as_json) as client:
        accepted = client.destroy_meeting(meid, idempotency_key=idempotency_key)
    if as_json:
        _echo_json({"requestId": accepted.request_id})
        return
    _out().print(f"meeting {meid} ended: requestId {accepted.request_id}")


@client_cli.command("query")
def query(
    meid: Annotated[str, typer.Argument(help="The meeting")],
    account_sid: SidOption = None,
    auth_token: TokenOption = None,
    app_id: AppOption = None,
    base_url: BaseUrlOption = LOCAL_SANDBOX_URL,
    timeout: TimeoutOption = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Show a meeting and each leg's state (--json: the wire `meeting` object)."""
    with _client(account_sid, auth_token, app_id, base_url, timeout, as_json) as client:
        meeting = client.query_meeting(meid)
    if as_json:
        _echo_json(meeting.raw)
        return
    out = _out()
    out.print(
        f"[bold]{meeting.meid}[/bold] {meeting.name}  state [bold]{meeting.state}[/bold]  "
        f"created {meeting.raw.get('createtime', '')}  ended {meeting.raw.get('endtime') or '-'}  "
        f"max {meeting.max_members}"
    )
    if meeting.pin:
        numbers = ", ".join(meeting.dialin_numbers) or "none configured"
        out.print(f"dial in: {numbers}  PIN {meeting.pin}")
    out.print(meeting_table(meeting, title="members"))
    for recording in meeting.recordings:
        when = f"{recording.raw.get('start', '')} – {recording.raw.get('end') or 'recording'}"
        size = f"{recording.seconds} s, {recording.bytes} bytes" if recording.ready else "not ready"
        out.print(f"recording {when} ({size}): {recording.url}")


@client_cli.command("events")
def events(
    meid: Annotated[str, typer.Argument(help="The meeting")],
    after: Annotated[int, typer.Option(help="Only events with seq > AFTER")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many (≤ 1000)")] = 100,
    account_sid: SidOption = None,
    auth_token: TokenOption = None,
    app_id: AppOption = None,
    base_url: BaseUrlOption = LOCAL_SANDBOX_URL,
    timeout: TimeoutOption = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Replay a meeting's events, as they were (or would have been) pushed."""
    with _client(account_sid, auth_token, app_id, base_url, timeout, as_json) as client:
        found = client.meeting_events(meid, after=after, limit=limit)
    if as_json:
        _echo_json(
            [{"seq": e.seq, "eventId": e.event_id, "type": e.type, "body": e.body} for e in found]
        )
        return
    _out().print(events_table(found, title=f"events of {meid}"))


def _member_action(action: str, past: str) -> Any:
    def command(
        meid: Annotated[str, typer.Argument(help="The meeting")],
        phone: Annotated[str, typer.Argument(help="The member's phone")],
        idempotency_key: IdempotencyOption = None,
        account_sid: SidOption = None,
        auth_token: TokenOption = None,
        app_id: AppOption = None,
        base_url: BaseUrlOption = LOCAL_SANDBOX_URL,
        timeout: TimeoutOption = 10.0,
        as_json: JsonOption = False,
    ) -> None:
        with _client(account_sid, auth_token, app_id, base_url, timeout, as_json) as client:
            method = getattr(client, action)
            accepted = method(meid, phone, idempotency_key=idempotency_key)
        if as_json:
            _echo_json({"requestId": accepted.request_id})
            return
        _out().print(f"{phone} {past}: requestId {accepted.request_id}")

    return command


client_cli.command("mute", help="Mute a joined member.")(_member_action("mute_member", "muted"))
client_cli.command("unmute", help="Unmute a joined member.")(
    _member_action("unmute_member", "unmuted")
)
client_cli.command("kick", help="Hang up a joined member.")(_member_action("kick_member", "kicked"))
client_cli.command("hold", help="Put a joined member on hold (music).")(
    _member_action("hold_member", "on hold")
)
client_cli.command("unhold", help="Take a member off hold.")(
    _member_action("unhold_member", "back in the meeting")
)


def _meeting_action(action: str, done: str) -> Any:
    def command(
        meid: Annotated[str, typer.Argument(help="The meeting")],
        idempotency_key: IdempotencyOption = None,
        account_sid: SidOption = None,
        auth_token: TokenOption = None,
        app_id: AppOption = None,
        base_url: BaseUrlOption = LOCAL_SANDBOX_URL,
        timeout: TimeoutOption = 10.0,
        as_json: JsonOption = False,
    ) -> None:
        with _client(account_sid, auth_token, app_id, base_url, timeout, as_json) as client:
            accepted = getattr(client, action)(meid, idempotency_key=idempotency_key)
        if as_json:
            _echo_json({"requestId": accepted.request_id})
            return
        _out().print(f"meeting {meid}: {done}; requestId {accepted.request_id}")

    return command


client_cli.command("record", help="Start recording a meeting.")(
    _meeting_action("start_recording", "recording")
)
client_cli.command("stop-recording", help="Stop recording (the MP3 link: query).")(
    _meeting_action("stop_recording", "recording stopped")
)
client_cli.command("mute-all", help="Mute everyone but the creator.")(
    _meeting_action("mute_all", "everyone but the creator muted")
)
client_cli.command("unmute-all", help="Unmute everyone but the creator.")(
    _meeting_action("unmute_all", "everyone unmuted")
)


@client_cli.command("prompt")
def prompt(
    meid: Annotated[str, typer.Argument(help="The meeting")],
    text: Annotated[str | None, typer.Option(help="Text to speak (espeak-ng)")] = None,
    url: Annotated[str | None, typer.Option(help="URL of a WAV to play")] = None,
    phone: Annotated[str | None, typer.Option(help="Only this member hears it")] = None,
    loop: Annotated[bool, typer.Option("--loop", help="Repeat until the next prompt")] = False,
    idempotency_key: IdempotencyOption = None,
    account_sid: SidOption = None,
    auth_token: TokenOption = None,
    app_id: AppOption = None,
    base_url: BaseUrlOption = LOCAL_SANDBOX_URL,
    timeout: TimeoutOption = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Play a prompt to the meeting (or to one member): --text or --url."""
    if (text is None) == (url is None):
        _err().print("give exactly one of --text and --url")
        raise typer.Exit(2)
    with _client(account_sid, auth_token, app_id, base_url, timeout, as_json) as client:
        accepted = client.play_prompt(
            meid, text=text, url=url, phone=phone, loop=loop, idempotency_key=idempotency_key
        )
    if as_json:
        _echo_json({"requestId": accepted.request_id})
        return
    _out().print(f"prompt playing in {meid}: requestId {accepted.request_id}")


@client_cli.command("stop-prompt")
def stop_prompt(
    meid: Annotated[str, typer.Argument(help="The meeting")],
    phone: Annotated[str | None, typer.Option(help="Only this member's prompts")] = None,
    idempotency_key: IdempotencyOption = None,
    account_sid: SidOption = None,
    auth_token: TokenOption = None,
    app_id: AppOption = None,
    base_url: BaseUrlOption = LOCAL_SANDBOX_URL,
    timeout: TimeoutOption = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Stop the prompts playing in the meeting (a looping one too), or one member's."""
    with _client(account_sid, auth_token, app_id, base_url, timeout, as_json) as client:
        accepted = client.stop_prompt(meid, phone=phone, idempotency_key=idempotency_key)
    if as_json:
        _echo_json({"requestId": accepted.request_id})
        return
    _out().print(f"prompts stopped in {meid}: requestId {accepted.request_id}")


@client_cli.command("balance")
def balance(
    account_sid: SidOption = None,
    auth_token: TokenOption = None,
    app_id: AppOption = None,
    base_url: BaseUrlOption = LOCAL_SANDBOX_URL,
    timeout: TimeoutOption = 10.0,
    as_json: JsonOption = False,
) -> None:
    """The account's balance (getBlance)."""
    with _client(account_sid, auth_token, app_id, base_url, timeout, as_json) as client:
        found = client.balance()
    if as_json:
        _echo_json(found.raw)
        return
    shown = "unlimited (billing off)" if found.unlimited else f"{found.balance}"
    _out().print(f"balance of {found.account_sid}: [bold]{shown}[/bold]")


@client_cli.command("cdrs")
def cdrs(
    after: Annotated[
        str, typer.Option(help="The requestid of the last CDR you have (0: from the first)")
    ] = "0",
    after_called: Annotated[
        str | None,
        typer.Option("--after-called", help="… and its called number (exact position)"),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many (≤ 1000)")] = 100,
    request: Annotated[
        str | None, typer.Option("--request", help="Only the CDRs of this requestId")
    ] = None,
    day: Annotated[
        str | None, typer.Option("--date", help="yyyyMMdd or yyyy-MM-dd: one hour's CDRs")
    ] = None,
    hour: Annotated[int | None, typer.Option(help="0-23, with --date")] = None,
    account_sid: SidOption = None,
    auth_token: TokenOption = None,
    app_id: AppOption = None,
    base_url: BaseUrlOption = LOCAL_SANDBOX_URL,
    timeout: TimeoutOption = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Pull CDRs (CallCdr): a page after --after, one request's (--request), or one hour's
    (--date and --hour)."""
    if (day is None) != (hour is None):
        _err().print("[red]error:[/red] --date and --hour go together", markup=True)
        raise typer.Exit(2)
    with _client(account_sid, auth_token, app_id, base_url, timeout, as_json) as client:
        if day is not None and hour is not None:
            found = client.cdrs_in_hour(day, hour)
        elif request is not None:
            found = client.cdrs_of_request(request)
        else:
            found = client.cdrs(CdrCursor(after, after_called), limit=limit)
    if as_json:
        _echo_json([record.raw for record in found])
        return
    table = Table(
        "requestid", "called", "answered", "ended", "s", "amount", "stateDesc", title="CDRs"
    )
    for record in found:
        table.add_row(
            record.request_id,
            record.called,
            record.raw.get("calledstime", ""),
            record.raw.get("calledetime", ""),
            str(record.duration),
            f"{record.amount:.2f}",
            record.state_desc,
        )
    out = _out()
    out.print(table)
    out.print(f"{len(found)} CDR(s)")


# ---- the demo ----------------------------------------------------------------------------------

#: Simulated-carrier numbers (spec §8), one of each behaviour.
DEMO_PARTIES: tuple[tuple[Party, str], ...] = (
    (Party("13800138000", name="张三"), "answers"),
    (Party("13800000486", name="李四"), "busy"),
    (Party("13800000408", name="王五"), "no answer"),
    (Party("13800000603", name="赵六"), "declines"),
    (Party("01053889900", name="前台", extension="1234"), "ext. DTMF"),
)


def _demo_notes() -> dict[str, str]:
    return {party.wire_phone: text for party, text in DEMO_PARTIES}


def _demo_view(meeting: Meeting, elapsed: float, seconds: float) -> Group:
    table = meeting_table(meeting, notes=_demo_notes())
    caption = Text(f"t+{elapsed:4.1f} s of at most {seconds:g} s · polling queryMeeting", "dim")
    return Group(table, caption)


def _require(value: str | None, flag: str) -> str:
    if value:
        return value
    _err().print(
        "[red]The demo needs credentials.[/red] Pass the demo credentials that "
        "`telemeeting serve` printed on its first start:\n"
        "  telemeeting demo --account-sid SID --auth-token TOKEN --app-id SANDBOX_APP_ID\n"
        f"or set {ENV_ACCOUNT_SID}, {ENV_AUTH_TOKEN} and {ENV_APP_ID} "
        f"(missing: {flag}).",
        markup=True,
    )
    raise typer.Exit(2)


def demo(
    account_sid: SidOption = None,
    auth_token: TokenOption = None,
    app_id: AppOption = None,
    base_url: BaseUrlOption = LOCAL_SANDBOX_URL,
    seconds: Annotated[
        float, typer.Option("--seconds", help="Give up waiting after this long")
    ] = 40.0,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between queries")] = 0.25,
) -> None:
    """Watch a meeting come alive: create it, invite simulated parties, follow each call live,
    end it, replay its events. Runs against a running `telemeeting serve` (sandbox by default).
    """
    sid = _require(account_sid, "--account-sid")
    token = _require(auth_token, "--auth-token")
    app = _require(app_id, "--app-id")
    out = _out()
    with _client(sid, token, app, base_url, 10.0, False) as client:
        try:
            meeting = _run_demo(client, out, seconds, poll)
        except TransportError as exc:
            _err().print(f"[dim]Is `telemeeting serve` running at {base_url}?[/dim]", markup=True)
            raise _fail(exc, False, base_url) from exc
    answered = sum(1 for m in meeting.members if m.was_answered)
    out.print(
        f"[bold]done:[/bold] meeting {meeting.meid} {meeting.state}; "
        f"{answered} of {len(meeting.members)} parties answered."
    )


def _run_demo(client: Client, out: Console, seconds: float, poll: float) -> Meeting:
    created = client.create_meeting(
        "telemeeting demo", custom_parm="demo", record=True, speaker_events=True
    )
    meid = created.meid
    out.print(f"[bold]meeting {meid}[/bold] created on {client.base_url}")
    invited = client.invite(meid, [party for party, _ in DEMO_PARTIES], custom_parm="demo")
    out.print(f"invited {len(DEMO_PARTIES)} parties (requestId {invited.request_id})")

    started = time.monotonic()
    meeting = client.query_meeting(meid)
    with Live(
        _demo_view(meeting, 0.0, seconds), console=out, refresh_per_second=8, transient=False
    ) as live:
        while True:
            elapsed = time.monotonic() - started
            live.update(_demo_view(meeting, elapsed, seconds))
            everyone = len(meeting.members) >= len(DEMO_PARTIES)
            if (everyone and meeting.settled) or meeting.ended or elapsed >= seconds:
                break
            time.sleep(poll)
            meeting = client.query_meeting(meid)
    if not out.is_terminal:
        out.line()  # Live's last frame ends without a newline when not on a terminal

    settled = meeting.settled
    out.print(
        "every call settled; ending the meeting"
        if settled
        else f"{seconds:g} s are up; ending the meeting"
    )
    if not meeting.ended:
        try:
            client.destroy_meeting(meid)
        except MeetingError as exc:  # it ended by itself in the meantime (-301)
            out.print(f"[dim]{exc}[/dim]")
    final = client.query_meeting(meid)
    title = f"final states · meeting {meid} {final.state}"
    out.print(meeting_table(final, title=title, notes=_demo_notes()))
    history = list(client.iter_meeting_events(meid))
    out.print(events_table(history, title=f"event history ({len(history)} events)"))
    _show_media(client, out, meid, history)
    return final


def _show_media(client: Client, out: Console, meid: str, history: list[MeetingEvent]) -> None:
    """The demo's extensions: who talked when, and the meeting's recording (ready within a
    moment of the end: it is encoded to MP3 then)."""
    changes = [
        typed
        for event in history
        for typed in event.events
        if isinstance(typed, MeetingStateChange) and typed.state == "speakers"
    ]
    out.print(f"[bold]speaker changes:[/bold] {len(changes)}")
    for change in changes:
        out.print(f"  {_time(change.timestamp)}  {', '.join(change.speakers) or '(silence)'}")
    deadline = time.monotonic() + 10
    meeting = client.query_meeting(meid)
    while not all(r.ready for r in meeting.recordings) and time.monotonic() < deadline:
        time.sleep(0.2)
        meeting = client.query_meeting(meid)
    for recording in meeting.recordings:
        state = f"{recording.seconds} s, {recording.bytes} bytes" if recording.ready else "encoding"
        out.print(f"[bold]recording[/bold] ({state}): {recording.url}")
