"""One meeting across two SERVERS (issue 16): two `telemeeting serve` processes on one
PostgreSQL database, with real phones. Server A owns the meeting and dials alice; the caller
dials in on server B, which does not own it: B admits the caller as its leg and links the
meeting to A's home worker through the orders table (service/spans.py) instead of saying
"unavailable". Each phone plays its own tone and hears the other and not itself; muting the
caller (an order B claims) silences it at alice's phone; killing B ends only the caller's leg,
with one `disconnect` push and one CDR, and alice's call goes on. What the link's audio does not
carry crosses too: the caller's join beeps at alice, alice's leave at the caller, and the speaker
events name the talkers of both servers together."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.receiver import Received, Receiver
from tests.servers import (
    Api,
    Server,
    Tenant,
    create_pg_database,
    drop_pg_database,
    free_port,
    start_server,
)
from tests.sip import test_dialin as dialin
from tests.sip.peers import (
    HOST,
    RATE,
    Baresip,
    answered,
    band_levels,
    call_api,
    key_in,
    numbers_of,
    phones_config,
    read_wav,
    ready_all,
    recordings_toml,
    tone_phones,
)
from tests.sip.test_cascade_workers import BEEP, BESIDE

pytestmark = [pytest.mark.timeout(200), pytest.mark.baresip, pytest.mark.postgres]

CLUSTER = {
    "TELEMEETING_CLUSTER_LEASE_SECONDS": "3",
    "TELEMEETING_CLUSTER_HEARTBEAT_SECONDS": "0.5",
}
CALLER = dialin.CALLER
TONES = {"alice": dialin.PEERS["alice"][1], CALLER: dialin.PEERS[CALLER][1]}


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = create_pg_database()
    yield url
    drop_pg_database(url)


def _serve(db: str, tmp_path: Path, name: str, config: Path, **env: str) -> Server:
    workdir = tmp_path / name
    workdir.mkdir(exist_ok=True)
    return start_server(db, workdir, env={**CLUSTER, **env}, extra_args=("--config", str(config)))


def _heard(
    peer: Baresip, tones: dict[str, float], since: float, start: float, end: float, until: float
) -> dict[str, float]:
    """What `peer` heard from `start` to `end` seconds after `since`, by tone; its recording
    ends at `until` (the recordings are aligned on their ends)."""
    samples = read_wav(peer.recording())
    offset = len(samples) / RATE - (until - since)
    window = samples[int((offset + start) * RATE) : int((offset + end) * RATE)]
    levels = band_levels(window, list(tones.values()))
    return {name: levels[tone] for name, tone in tones.items()}


async def _with_callbacks(server: Server, receiver: Receiver) -> Tenant:
    """A tenant whose production app pushes to `receiver`."""
    tenant = await asyncio.to_thread(server.new_tenant)
    tenant.production_app = await asyncio.to_thread(
        server.make_app,
        tenant.sid,
        "production",
        callback_url=f"http://127.0.0.1:{receiver.port}/cb",
    )
    return tenant


async def _dial_in_meeting_with_alice(api: Api, alice: str) -> str:
    """A dial-in meeting (PIN 2468) placed on `api`'s server, alice dialled and answered."""
    body = {"action": "createMeeting", "parties": [{"phone": alice}], "dialin": "1", "pin": "2468"}
    meid = (await call_api(api, body))["meid"]
    await asyncio.to_thread(api.wait_for, meid, answered([alice]), "production", 20)
    return str(meid)


async def _dial_in(caller: Baresip, config: Path, meid: str, api: Api) -> None:
    """The caller dials the dial-in number on the server of `config` and joins the meeting."""
    port = int(tomllib.loads(config.read_text())["sip"]["local_port"])
    await caller.command("dial", f"sip:{dialin.DIALIN}@{HOST}:{port}")
    await caller.wait_event("CALL_ESTABLISHED")
    await key_in(caller, f"{meid}#2468#")
    await asyncio.to_thread(api.wait_for, meid, dialin.dave_in, "production", 30)


def _disconnects(pushes: list[Received], phone: str) -> list[Received]:
    return [
        p
        for p in pushes
        if p.kind == "CallState" and p.body["dsc"] == phone and p.body["state"] == "disconnect"
    ]


def _cdrs(pushes: list[Received], phone: str) -> list[Received]:
    return [p for p in pushes if p.kind == "Call" and p.body["cdr"][0]["called"] == phone]


async def test_a_caller_on_another_server_joins_by_a_link_and_its_death_ends_only_it(
    tmp_path: Path, pg_url: str
) -> None:
    alice, caller = peers = tone_phones(tmp_path, TONES, seconds=90)
    numbers = numbers_of(dialin.PEERS)
    receiver = Receiver(free_port())
    servers: list[Server] = []
    try:
        await ready_all(peers)
        home_config = phones_config(
            tmp_path / "a.toml", [alice], numbers, recordings_toml(tmp_path)
        )
        b_config = phones_config(tmp_path / "b.toml", [], numbers, dialin.dialin_toml(tmp_path))
        a = await asyncio.to_thread(_serve, pg_url, tmp_path, "a", home_config)
        servers.append(a)
        b = await asyncio.to_thread(_serve, pg_url, tmp_path, "b", b_config)
        servers.append(b)
        # The meeting is placed on the server that takes the request.
        api = Api(a, await _with_callbacks(a, receiver))
        meid = await _dial_in_meeting_with_alice(api, numbers["alice"])
        assert "server_link" not in a.log()
        await _dial_in(caller, b_config, meid, api)
        started = time.monotonic()
        assert "server_link.opened" in b.log(), b.log()[-3000:]
        await asyncio.sleep(3.0)
        await call_api(api, {"action": "muteMeetingMember", "confid": meid, "phone": CALLER})
        muted = time.monotonic()
        await asyncio.sleep(2.5)

        os.kill(b.process.pid, signal.SIGKILL)  # B and the caller's call with it
        await asyncio.to_thread(b.process.wait, 10)
        killed = time.monotonic()
        # B's media workers see their parent gone and hang up as they exit.
        await caller.wait_event("CALL_CLOSED", timeout=15)
        caller_closed = time.monotonic()
        pushes = await asyncio.to_thread(
            receiver.wait_for, lambda ps: _disconnects(ps, CALLER) and _cdrs(ps, CALLER), 20
        )
        assert time.monotonic() - killed < 15
        assert "server_link.server_lost" in a.log(), a.log()[-3000:]
        await asyncio.sleep(2.0)  # alice's call goes on; a duplicate would have come by now
        meeting = await asyncio.to_thread(api.query, meid, "production")
        states = {m["phone"]: m["state"] for m in meeting["members"]}
        assert meeting["state"] == "active" and states[numbers["alice"]] == "answer", meeting
        pushes = receiver.pushes()
        assert len(_disconnects(pushes, CALLER)) == 1 and len(_cdrs(pushes, CALLER)) == 1
        assert not _disconnects(pushes, numbers["alice"])
        assert "server_link.closed" in a.log(), a.log()[-3000:]
        await call_api(api, {"action": "destroyMeeting", "confid": meid})
        await alice.wait_event("CALL_CLOSED", timeout=15)
        ended = time.monotonic()
    finally:
        await asyncio.gather(*(peer.stop() for peer in peers))
        for server in servers:
            server.stop()
        receiver.stop()

    before_mute = muted - started
    unmuted = _heard(alice, TONES, started, 0.7, before_mute - 0.3, ended)
    assert unmuted[CALLER] - unmuted["alice"] >= 20, unmuted
    silenced = _heard(alice, TONES, started, before_mute + 0.7, before_mute + 2.0, ended)
    assert unmuted[CALLER] - silenced[CALLER] >= 25, (unmuted, silenced)
    # The caller's call ended when B died: its recording ends there.
    hears = _heard(caller, TONES, started, 0.7, before_mute - 0.3, caller_closed)
    assert hears["alice"] - hears[CALLER] >= 20, hears


async def test_a_full_home_hands_the_next_dial_to_another_server(
    tmp_path: Path, pg_url: str
) -> None:
    """`max_legs_per_node = 1` and one worker each: alice fills the owner A, so bob, invited
    next, is dialled by B, linked to A's home first; they hear each other, and bob's mute (an
    order to B, his server) silences him at alice's phone."""
    tones = {name: dialin.PEERS[name][1] for name in ("alice", "bob")}
    alice, bob = peers = tone_phones(tmp_path, tones, seconds=60)
    numbers = numbers_of(dialin.PEERS)
    extra = "[placement]\nmax_legs_per_node = 1\n\n" + recordings_toml(tmp_path)
    servers: list[Server] = []
    try:
        await ready_all(peers)
        for name in ("a", "b"):
            config = phones_config(tmp_path / f"{name}.toml", peers, numbers, extra)
            servers.append(await asyncio.to_thread(_serve, pg_url, tmp_path, name, config))
        a, b = servers
        api = Api(a, await asyncio.to_thread(a.new_tenant))
        body = {"action": "createMeeting", "parties": [{"phone": numbers["alice"]}]}
        meid = (await call_api(api, body))["meid"]
        await asyncio.to_thread(api.wait_for, meid, answered([numbers["alice"]]), "production", 20)
        invite = {"action": "inviteJoinMeeting", "confid": meid}
        await call_api(api, {**invite, "parties": [{"phone": numbers["bob"]}]})
        await asyncio.to_thread(
            api.wait_for, meid, answered(list(numbers[n] for n in tones)), "production", 30
        )
        started = time.monotonic()
        assert "server_link.overflow" in a.log(), a.log()[-3000:]
        assert "server_link.opened" in b.log(), b.log()[-3000:]
        await asyncio.sleep(3.0)
        await call_api(
            api, {"action": "muteMeetingMember", "confid": meid, "phone": numbers["bob"]}
        )
        muted = time.monotonic()
        await asyncio.sleep(2.5)
        await call_api(api, {"action": "destroyMeeting", "confid": meid})
        for peer in peers:
            await peer.wait_event("CALL_CLOSED", timeout=15)
        ended = time.monotonic()
    finally:
        await asyncio.gather(*(peer.stop() for peer in peers))
        for server in servers:
            server.stop()

    before_mute = muted - started
    for peer, other in ((alice, "bob"), (bob, "alice")):
        heard = _heard(peer, tones, started, 0.7, before_mute - 0.3, ended)
        assert heard[other] - heard[peer.name] >= 20, (peer.name, heard)
    unmuted = _heard(alice, tones, started, 0.7, before_mute - 0.3, ended)
    silenced = _heard(alice, tones, started, before_mute + 0.7, before_mute + 2.0, ended)
    assert unmuted["bob"] - silenced["bob"] >= 25, (unmuted, silenced)


async def test_the_homes_death_leaves_the_caller_on_the_adopter_which_goes_on_as_home(
    tmp_path: Path, pg_url: str
) -> None:
    """A owns the meeting (alice), the caller is on B. `kill -9` A: alice's leg ends once, the
    caller's does not (B carries it); B adopts the meeting, drops its link to the dead home
    (RelinkServer) and, as the new home, dials bob, whom the caller hears."""
    tones = {"alice": dialin.PEERS["alice"][1], "bob": dialin.PEERS["bob"][1], CALLER: 1000.0}
    alice, bob, caller = peers = tone_phones(tmp_path, tones, seconds=90)
    numbers = numbers_of(dialin.PEERS)
    receiver = Receiver(free_port())
    servers: list[Server] = []
    try:
        await ready_all(peers)
        a_config = phones_config(tmp_path / "a.toml", [alice], numbers, recordings_toml(tmp_path))
        b_config = phones_config(tmp_path / "b.toml", [bob], numbers, dialin.dialin_toml(tmp_path))
        for name, config in (("a", a_config), ("b", b_config)):
            servers.append(await asyncio.to_thread(_serve, pg_url, tmp_path, name, config))
        a, b = servers
        tenant = await _with_callbacks(a, receiver)
        via_a, via_b = Api(a, tenant), Api(b, tenant)
        meid = await _dial_in_meeting_with_alice(via_a, numbers["alice"])
        await _dial_in(caller, b_config, meid, via_a)

        os.kill(a.process.pid, signal.SIGKILL)
        await asyncio.to_thread(a.process.wait, 10)
        await asyncio.to_thread(
            receiver.wait_for, lambda ps: _disconnects(ps, numbers["alice"]), 20
        )
        await asyncio.to_thread(lambda: _wait_for_log(b, "server_link.home_here", 15))
        started, ended = await _bob_talks_with_the_caller(via_b, meid, numbers["bob"], bob, caller)
        await asyncio.sleep(1.0)  # a duplicate push would have come by now
        pushes = receiver.pushes()
        for phone in (numbers["alice"], CALLER, numbers["bob"]):
            assert len(_disconnects(pushes, phone)) == 1, phone
    finally:
        await asyncio.gather(*(peer.stop() for peer in peers))
        for server in servers:
            server.stop()
        receiver.stop()

    for peer, other in ((bob, CALLER), (caller, "bob")):
        heard = _heard(peer, tones, started, 0.7, 2.7, ended)
        assert heard[other] - heard[peer.name] >= 20, (peer.name, heard)


async def _bob_talks_with_the_caller(
    home: Api, meid: str, bob_number: str, bob: Baresip, caller: Baresip
) -> tuple[float, float]:
    """The new home dials bob; once bob and the caller are both answered they talk for 3 s and
    the meeting is destroyed. When the talk started and when both phones had closed."""
    invite = {"action": "inviteJoinMeeting", "confid": meid, "parties": [{"phone": bob_number}]}
    await call_api(home, invite)
    await asyncio.to_thread(home.wait_for, meid, answered([bob_number, CALLER]), "production", 20)
    started = time.monotonic()
    await asyncio.sleep(3.0)
    await call_api(home, {"action": "destroyMeeting", "confid": meid})
    for peer in (bob, caller):
        await peer.wait_event("CALL_CLOSED", timeout=15)
    return started, time.monotonic()


def _wait_for_log(server: Server, text: str, timeout: float) -> None:
    """The server's log says `text` within `timeout` seconds (its log is the only witness of a
    take-over's relink)."""
    deadline = time.monotonic() + timeout
    while text not in server.log():
        assert time.monotonic() < deadline, server.log()[-3000:]
        time.sleep(0.1)


async def test_the_other_servers_relink_to_the_adopter_of_a_dead_home(
    tmp_path: Path, pg_url: str
) -> None:
    """Three servers: A owns the meeting (alice), the caller is on B, C carries nothing. `kill
    -9` A: C adopts the meeting (B judges other servers by a lease of 30 s, so only C finds A
    dead in time: with the same lease B won the race now and then, and the relink went
    untested), B closes its link to A and links to C, the new home; bob, invited next, is
    dialled by C and hears the caller on B (and the caller him) through the new link."""
    tones = {"bob": dialin.PEERS["bob"][1], CALLER: dialin.PEERS[CALLER][1]}
    alice, bob, caller = peers = tone_phones(
        tmp_path, {"alice": dialin.PEERS["alice"][1], **tones}, seconds=90
    )
    numbers = numbers_of(dialin.PEERS)
    servers: list[Server] = []
    try:
        await ready_all(peers)
        configs = {
            "a": phones_config(tmp_path / "a.toml", [alice], numbers, recordings_toml(tmp_path)),
            "b": phones_config(tmp_path / "b.toml", [], numbers, dialin.dialin_toml(tmp_path)),
            "c": phones_config(tmp_path / "c.toml", [bob], numbers, recordings_toml(tmp_path)),
        }
        beats = {"a": "0.5", "b": "1.5", "c": "0.2"}
        for name, config in configs.items():
            env = {"TELEMEETING_CLUSTER_HEARTBEAT_SECONDS": beats[name]}
            if name == "b":
                env["TELEMEETING_CLUSTER_LEASE_SECONDS"] = "30"
            servers.append(await asyncio.to_thread(_serve, pg_url, tmp_path, name, config, **env))
        a, b, c = servers
        tenant = await asyncio.to_thread(a.new_tenant)
        via_a, via_c = Api(a, tenant), Api(c, tenant)
        meid = await _dial_in_meeting_with_alice(via_a, numbers["alice"])
        await _dial_in(caller, configs["b"], meid, via_a)

        os.kill(a.process.pid, signal.SIGKILL)
        await asyncio.to_thread(a.process.wait, 10)
        await asyncio.to_thread(_wait_for_log, c, "meeting.taken_over", 15)
        assert "meeting.taken_over" not in b.log()
        await asyncio.to_thread(_wait_for_log, b, f"home={_node_of(c)}", 15)
        started, ended = await _bob_talks_with_the_caller(via_c, meid, numbers["bob"], bob, caller)
    finally:
        await asyncio.gather(*(peer.stop() for peer in peers))
        for server in servers:
            server.stop()

    for peer, other in ((bob, CALLER), (caller, "bob")):
        heard = _heard(peer, tones, started, 0.7, 2.7, ended)
        assert heard[other] - heard[peer.name] >= 20, (peer.name, heard)


def _node_of(server: Server) -> str:
    """A server's node id as its log names it (hostname:port, the default)."""
    return f"{socket.gethostname()}:{server.port}"


#: Tones clear of the beep's note and the band beside it (tests/sip/test_cascade_workers.py).
BEEPS = {"beep": BEEP, "beside": BESIDE}


def _speaking(*phones: str) -> Callable[[dict[str, Any]], bool]:
    """For `api.wait_for`: queryMeeting says exactly these phones are talking."""

    def check(meeting: dict[str, Any]) -> bool:
        return {m["phone"] for m in meeting["members"] if m.get("speaking")} == set(phones)

    return check


async def test_beeps_and_speaker_events_cross_servers(tmp_path: Path, pg_url: str) -> None:
    """A meeting created on A with beeps and speaker events, alice dialled by A, the caller
    dialling in on B: the caller's join beeps at alice (B tells A: a `ServerPresence` order),
    alice's leave beeps at the caller (B runs the meeting's `beep`, which A's link reply gave
    it), and queryMeeting and the speaker events name alice and the caller together (each
    server detects its own members; the store keeps the union). Both phones play a tone all
    along, so both talk."""
    tones = {"alice": 1150.0, CALLER: 1450.0}
    alice, caller = peers = tone_phones(tmp_path, tones, seconds=90)
    numbers = numbers_of(dialin.PEERS)
    servers: list[Server] = []
    try:
        await ready_all(peers)
        a_config = phones_config(tmp_path / "a.toml", [alice], numbers, recordings_toml(tmp_path))
        b_config = phones_config(tmp_path / "b.toml", [], numbers, dialin.dialin_toml(tmp_path))
        for name, config in (("a", a_config), ("b", b_config)):
            servers.append(await asyncio.to_thread(_serve, pg_url, tmp_path, name, config))
        a, b = servers
        api = Api(a, await asyncio.to_thread(a.new_tenant))
        body = {
            "action": "createMeeting",
            "parties": [{"phone": numbers["alice"]}],
            "dialin": "1",
            "pin": "2468",
            "beep": "3",
            "speakerevents": "1",
        }
        meid = (await call_api(api, body))["meid"]
        await asyncio.to_thread(api.wait_for, meid, answered([numbers["alice"]]), "production", 20)
        await asyncio.sleep(2.0)  # a quiet stretch before the caller's join
        await _dial_in(caller, b_config, meid, api)
        joined = time.monotonic()
        both = _speaking(numbers["alice"], CALLER)
        await asyncio.to_thread(api.wait_for, meid, both, "production", 15)
        await asyncio.sleep(max(0.0, joined + 3.5 - time.monotonic()))
        await alice.command("hangup")
        await alice.wait_event("CALL_CLOSED", timeout=15)
        left = time.monotonic()
        await asyncio.to_thread(api.wait_for, meid, _speaking(CALLER), "production", 10)
        await asyncio.sleep(max(0.0, left + 3.0 - time.monotonic()))
        events = await call_api(
            api, {"action": "queryMeetingEvents", "confid": meid}, func_url="MeetingQuery.wx"
        )
        await call_api(api, {"action": "destroyMeeting", "confid": meid})
        await caller.wait_event("CALL_CLOSED", timeout=15)
        ended = time.monotonic()
        assert "server_link.presence_failed" not in a.log() + b.log()
    finally:
        await asyncio.gather(*(peer.stop() for peer in peers))
        for server in servers:
            server.stop()

    def beep(levels: dict[str, float]) -> float:
        return levels["beep"] - levels["beside"]

    # The caller's join on B beeps at alice on A, and only then.
    at_join = _heard(alice, BEEPS, joined, -1.5, 1.0, left)
    after = _heard(alice, BEEPS, joined, 1.5, 3.0, left)
    assert beep(at_join) >= 20 and beep(after) < 10, (at_join, after)
    # Alice's leave on A beeps at the caller on B.
    at_leave = _heard(caller, BEEPS, left, -0.5, 1.2, ended)
    after = _heard(caller, BEEPS, left, 1.5, 2.8, ended)
    assert beep(at_leave) >= 20 and beep(after) < 10, (at_leave, after)
    # Each hears the other (the link is up) and the speaker events name both together.
    hears = _heard(alice, tones, joined, 1.5, 3.0, left)
    assert hears[CALLER] - hears["alice"] >= 20, hears
    said = [
        sorted(e["body"]["speakers"])
        for e in events["events"]
        if e["type"] == "MeetingState" and e["body"]["state"] == "speakers"
    ]
    assert sorted([numbers["alice"], CALLER]) in said, said
    assert said[-1] == [CALLER], said
