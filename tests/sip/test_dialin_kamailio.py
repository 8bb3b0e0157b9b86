"""Dial-in behind Kamailio at the SIP edge (issue 15), with Debian's kamailio started here on
loopback and deploy/kamailio/kamailio.cfg unchanged (settings by -A defines).

Kamailio listens on 127.0.0.2; the server trusts only that address. A baresip phone calling the
server directly from 127.0.0.1 gets 403; through Kamailio (dispatcher, OPTIONS keepalive,
record-route) it keys the meeting number and PIN as RFC 4733 events and is mixed N-1 with two
dialled phones, one of which the server dials out through Kamailio as its outbound proxy; the
API's kick reaches it through the proxy. A sipp caller keying by SIP INFO joins too and is
released when the meeting ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sip.peers import (
    HOST,
    SCENARIOS,
    Baresip,
    Sipp,
    all_answered,
    band_levels,
    call_api,
    free_ports,
    key_in,
    need,
    numbers_of,
    read_wav,
    recordings_toml,
    serving_phones,
    tone_phones,
    tones_of,
)

pytestmark = [pytest.mark.timeout(150), pytest.mark.baresip, pytest.mark.sipp]

EDGE = "127.0.0.2"  # Kamailio's address: the only trusted source
CONFIG = Path(__file__).parents[2] / "deploy" / "kamailio" / "kamailio.cfg"
RATE = 8000
DIALIN = "4000"
# Each phone's SIP user is its number: a call dialled out through the proxy keeps the number
# in its Request-URI, and baresip answers only its own user.
ALICE, BOB = "13800000001", "13800000002"
PEERS = {ALICE: (ALICE, 440.0), BOB: (BOB, 660.0), "13900000009": ("13900000009", 1000.0)}
CALLER = "13900000009"
SIPP_CALLER = "13700000007"
TONES = [tone for _, tone in PEERS.values()]


@contextlib.contextmanager
def kamailio(workdir: Path, port: int, media_node: int, trunk: str) -> Iterator[Path]:
    """Debian's kamailio with the shipped config, in the foreground; yields its log."""
    binary = need("kamailio")
    (workdir / "kamailio-run").mkdir(exist_ok=True)
    dispatcher = workdir / "dispatcher.list"
    dispatcher.write_text(f"1 sip:{HOST}:{media_node}\n")
    log = workdir / "kamailio.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary, "-f", str(CONFIG), "-DD", "-E", "-m", "32", "-M", "4",
                "-Y", str(workdir / "kamailio-run"),
                "-A", f"LISTEN=udp:{EDGE}:{port}",
                "-A", f'DISPATCHER_LIST="{dispatcher}"',
                "-A", f'TRUNK="{trunk}"',
                "-A", "DS_PING_SECONDS=1",
            ],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while "Listening on" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"kamailio did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # its own session: the children too
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def phones(tmp_path: Path) -> list[Baresip]:
    return tone_phones(tmp_path, tones_of(PEERS), seconds=60)  # hangs up when its file ends


def info_keys(caller: str, keys: str) -> str:
    """The scenario's INFO requests, one per key (CSeq 2, 3, …)."""
    blocks = []
    for index, key in enumerate(keys):
        blocks.append(
            f"""  <send retrans="500"><![CDATA[

      INFO [$contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {index + 2} INFO
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal={key}
      Duration=160

    ]]></send>
  <recv response="200"/>
  <pause milliseconds="100"/>"""
        )
    return "\n".join(blocks)


def joined(phone: str):
    def check(meeting: dict) -> bool:
        return any(
            m["phone"] == phone and m["state"] == "answer" and m["direction"] == "in"
            for m in meeting["members"]
        )

    return check


async def test_dialin_through_kamailio(tmp_path: Path) -> None:
    assert (SCENARIOS / "dialin_info.xml").exists()
    need("kamailio")
    peers = phones(tmp_path)
    alice, bob, dave = peers
    (edge_port,) = free_ports(1)
    extra = (
        f'trusted_sources = ["{EDGE}"]\n\n'
        f'[[sip.dialin]]\nnumber = "{DIALIN}"\n\n'
        # bob is dialled out through Kamailio (first matching route wins)
        f'[[sip.routes]]\nmatch = "^{BOB}$"\n'
        f'target = "sip:{{number}}@{EDGE}:{edge_port}"\n\n' + recordings_toml(tmp_path)
    )
    async with serving_phones(tmp_path, peers, numbers_of(PEERS), extra=extra) as api:
        config = tomllib.loads((tmp_path / "telemeeting.toml").read_text())
        node_port = int(config["sip"]["local_port"])
        with kamailio(tmp_path, edge_port, node_port, f"sip:{HOST}:{bob.port}") as edge_log:
            created = await call_api(
                api,
                {
                    "action": "createMeeting",
                    "parties": [{"phone": ALICE}, {"phone": BOB}],
                    "dialin": "1",
                },
            )
            meid, pin = created["meid"], created["pin"]
            assert len(pin) == 6 and pin.isdigit()
            await asyncio.to_thread(api.wait_for, meid, all_answered, "production", 20)
            # straight to the media node from an untrusted address: 403
            await dave.command("dial", f"sip:{DIALIN}@{HOST}:{node_port}")
            refused = await dave.wait_event("CALL_CLOSED")
            assert "403" in str(refused[-1]), refused
            # through the edge: answered, keyed in, joined
            await dave.command("dial", f"sip:{DIALIN}@{EDGE}:{edge_port}")
            await dave.wait_event("CALL_ESTABLISHED")
            await key_in(dave, f"{meid}#{pin}#")
            await asyncio.to_thread(api.wait_for, meid, joined(CALLER), "production", 30)
            await asyncio.sleep(3.0)  # everyone talks
            await call_api(api, {"action": "kickMeetingMember", "confid": meid, "phone": CALLER})
            await dave.wait_event("CALL_CLOSED", count=2, timeout=15)
            # a caller keying by SIP INFO through the edge
            sipp = Sipp(
                tmp_path,
                "dialin_info.xml",
                f"{EDGE}:{edge_port}",
                called=DIALIN,
                caller=SIPP_CALLER,
                infos=info_keys(SIPP_CALLER, f"{meid}#{pin}#"),
            )
            try:
                await asyncio.to_thread(api.wait_for, meid, joined(SIPP_CALLER), "production", 30)
                await call_api(api, {"action": "destroyMeeting", "confid": meid})
                assert await sipp.wait(20) == 0, sipp.log()
            finally:
                sipp.stop()
            for peer in (alice, bob):
                await peer.wait_event("CALL_CLOSED", timeout=15)
            events = await call_api(
                api, {"action": "queryMeetingEvents", "confid": meid}, "MeetingQuery.wx"
            )
            edge = edge_log.read_text(errors="replace")
    assert f"dial-in {DIALIN} from {HOST}" in edge, edge
    assert f"dial-out {BOB} from media node {HOST}" in edge, edge
    for phone, reason in ((CALLER, "应答|被踢出"), (SIPP_CALLER, "应答|会议结束")):
        theirs = [e["body"] for e in events["events"] if e["body"].get("dsc") == phone]
        states = [body["state"] for body in theirs if "state" in body]
        assert states == ["callin", "answer", "disconnect"], theirs
        assert theirs[2]["stateDesc"] == reason
        cdrs = [body for body in theirs if "cdr" in body]
        assert len(cdrs) == 0  # the CDR's phone is under `called`, not `dsc`
        calls = [
            entry
            for e in events["events"]
            if e["type"] == "Call"
            for entry in e["body"]["cdr"]
            if entry["called"] == phone
        ]
        assert len(calls) == 1 and calls[0]["direction"] == "in", calls
    # dave heard alice and bob (bob's audio came over the proxied call), not himself
    heard = read_wav(dave.recording())
    levels = band_levels(heard[-RATE * 3 : -RATE // 2], TONES)
    assert min(levels[440.0], levels[660.0]) - levels[1000.0] >= 25, levels
    # bob, dialled through the proxy, heard dave while he was in
    bob_heard = band_levels(read_wav(bob.recording()), TONES)
    assert bob_heard[1000.0] - bob_heard[660.0] >= 25, bob_heard
