"""Structure-aware fuzzer of the API's request bodies, against a real server (issue 11 item 8).

Seeds are real client bodies: the seed document's inviteJoinMeeting example verbatim (with its
unescaped `parties` string and its line breaks), and a body for every action of the contract
(`telemeeting.wire.actions`) as the spec describes them, some with a meeting that exists. Each
body is then mutated structurally (fields dropped, duplicated, retyped, nested; huge strings,
control characters, unusual unicode, numbers as strings and back, deep nesting) and, for some,
at the byte level (truncation, byte flips, splices). Every request is correctly signed by the
SDK's request builder (`telemeeting.client._calls.Calls`) so that it gets past authentication and
reaches the body parser and the actions; the Sign stays valid for the server's 24-hour window.

Bodies go over `--connections` kept-alive connections. The report: statusCodes seen with counts,
every answer that is not the contract's envelope (a JSON object whose first keys are statusCode,
statusMsg, requestId, with a code of `telemeeting.wire.status`), every `-100`, the slowest
requests with their bodies, requests/s, and the server's RSS (VmRSS of its process tree) before
and after. A request slower than `--slow-ms` is sent again, alone, on an idle connection; it
counts as slow only if it is slow every time (a busy shared machine makes single timings noisy).
The exit status is 1 on any non-envelope answer, any -100 or any repeatably slow request.

Bodies are a function of `--seed` alone (the fuzz meeting's room number too), so a run can be
repeated; `--show N` prints the first N bodies without sending anything.

    python bench/fuzz_api.py                          # 100,000 bodies, own server on SQLite
    python bench/fuzz_api.py --bodies 3000 --seed 7
    python bench/fuzz_api.py --url http://127.0.0.1:8081 --sid S --token T --appid A
    python bench/fuzz_api.py --show 20 --seed 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from telemeeting.client._calls import Call, Calls, RetryPolicy
from telemeeting.wire import actions as wa
from telemeeting.wire.status import Status

CODES = frozenset(status.code for status in Status)
INTERNAL = Status.INTERNAL_ERROR.code
ENVELOPE_KEYS = ["statusCode", "statusMsg", "requestId"]
RECHECKS = 50  # at most this many of the slowest requests are sent again, alone
BODY_LIMIT = 64 * 1024  # the server's documented body limit; huge strings straddle it

#: The seed document's request example, byte for byte as a client following it would send it.
SEED_EXAMPLE = (
    '{"action":"inviteJoinMeeting",\n'
    '"appid":"ff8080813fc70a7b013fc72312324213",\n'
    '"confid":"002",\n'
    '"parties":"[{"name":"张三","phone":"150****0804"},\n'
    '{"name":"李四","phone":"136****7556"}]"}'
)

#: Mutators left out by default because what they find is already reported (issue 11); named by
#: `--allow-known`. Empty: nothing found so far.
KNOWN: dict[str, str] = {}

PHONES = ["13800138000", "01053889900,1234", "+8613912345678", "150****0804", "10086", "1" * 20]
FIELDS = [
    "action", "appid", "confid", "parties", "CustomParm", "customParm", "creator", "meetingname",
    "srcclid", "dstclid", "shownumber", "bookmeeting", "booktime", "maxmembers", "phone",
    "after", "limit", "name",
]  # fmt: skip


# ---- seeds --------------------------------------------------------------------------------------


def seeds(appid: str, meid: str) -> list[dict[str, Any] | str]:
    """Real client bodies: the seed document's example, and each action as the spec describes it."""
    parties = [
        {"name": "张三", "phone": "13800138000"},
        {"name": "wangwu", "phone": "01053889900,1234"},
    ]
    one = [{"name": "p", "phone": "13912345678"}]
    parties_text = json.dumps(parties, ensure_ascii=False)
    return [
        SEED_EXAMPLE,
        SEED_EXAMPLE.replace("ff8080813fc70a7b013fc72312324213", appid).replace(
            '"002"', f'"{meid}"'
        ),
        {"action": wa.INVITE, "appid": appid, "confid": meid, "parties": parties_text},
        {"action": wa.INVITE, "appid": appid, "confid": meid, "parties": one, "CustomParm": "o-1"},
        {"action": wa.CREATE_MEETING, "appid": appid},
        {
            "action": wa.CREATE_MEETING,
            "appid": appid,
            "creator": "13800138000",
            "meetingname": "周会",
            "parties": parties,
            "srcclid": "02150000000",
            "dstclid": "02150000001",
            "shownumber": "02150000002",
            "maxmembers": 10,
            "CustomParm": "order-42",
        },
        {
            "action": wa.CREATE_MEETING,
            "appid": appid,
            "meetingname": "booked",
            "bookmeeting": "1",
            "booktime": "2099-01-01 10:00:00",
            "confid": "room_1",
        },
        {
            "action": wa.CREATE_MEETING,
            "appid": appid,
            "bookmeeting": 1,
            "booktime": "20990101100000",
        },
        {"action": wa.QUERY_MEETING, "appid": appid, "confid": meid},
        {"action": wa.DESTROY_MEETING, "appid": appid, "confid": "000000"},
        {"action": wa.MUTE_MEMBER, "appid": appid, "confid": meid, "phone": "13800138000"},
        {"action": wa.UNMUTE_MEMBER, "appid": appid, "confid": meid, "phone": "13800138000"},
        {"action": wa.KICK_MEMBER, "appid": appid, "confid": meid, "phone": "13800138000"},
        {"action": wa.QUERY_EVENTS, "appid": appid, "confid": meid, "after": 0, "limit": 100},
    ]


# ---- mutators -----------------------------------------------------------------------------------

WEIRD_TEXT = [
    "\x00", "\x1f", "\x7f", "\x85", "\u2028", "\u2029", "\ufeff", "\u202e", "\u200b", "\r\n",
    "１３８００１３８０００", "١٣٨٠٠١٣٨٠٠٠", "𝟏𝟑𝟖", "😀", "\ud800", "\udfff", "é", "ß", "Ǆ",
    "%00", "\\", '"', "'", "<sip:a@b>", ";tag=x", "sip:x@y", "\\u0000", "NaN", "Infinity",
    "-0", "1e309", "0x10", " ", "",
]  # fmt: skip


def _scalar(rng: random.Random) -> Any:
    pick = rng.randrange(12)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False])
    if pick == 2:
        return rng.choice([0, -1, 1, 2**31, 2**63, 10**40, -(10**25)])
    if pick == 3:
        return rng.choice([0.5, -0.0, 1e308, 1e-320, 13800138000.0])
    if pick == 4:
        return rng.choice(PHONES)
    if pick == 5:
        return "".join(rng.choice(WEIRD_TEXT) for _ in range(rng.randrange(1, 6)))
    if pick == 6:
        return "".join(chr(rng.randrange(0x20, 0x7F)) for _ in range(rng.randrange(0, 40)))
    if pick == 7:
        return "".join(chr(rng.randrange(0, 0x3000)) for _ in range(rng.randrange(0, 20)))
    if pick == 8:
        return rng.choice(["20990101100000", "2099-01-01 10:00:00", "99991231235959", "0"])
    if pick == 9:
        return rng.choice(["1", "0", "true", "", " 1"])
    if pick == 10:
        return [_scalar(rng)]
    return {"k": _scalar(rng)}


def _huge(rng: random.Random) -> str:
    size = rng.choice([300, 300, 4_000, 4_000, 30_000, BODY_LIMIT - 200, BODY_LIMIT + 10])
    unit = rng.choice(["a", "9", "张", '"', "\\", "[", '[{"', '"parties":"[', ",", "\x01"])
    return unit * (size // len(unit.encode()))


def _deep(rng: random.Random) -> Any:
    depth = rng.choice([10, 100, 1_000, 5_000])
    value: Any = rng.choice(PHONES)
    for _ in range(min(depth, 200)):  # deeper ones are built as text (see _deep_text)
        value = [value] if rng.random() < 0.5 else {"phone": value}
    return value


def _deep_text(rng: random.Random) -> str:
    depth = rng.choice([100, 1_000, 10_000, 30_000])
    opener = rng.choice(["[", '{"a":', '[{"phone":'])
    closer = {"[": "]", '{"a":': "}", '[{"phone":': "}]"}[opener]
    inner = opener * depth + '"13800138000"' + closer * depth * rng.choice([0, 1])
    return inner


def _retype(value: Any, rng: random.Random) -> Any:
    """A number as a string and back, a string as a list or object, and so on."""
    if isinstance(value, str):
        digits = value.lstrip("+")
        if digits.isdigit() and len(digits) < 400 and rng.random() < 0.6:
            return int(digits) if rng.random() < 0.7 else float(digits)
        return rng.choice(
            [
                [value],
                {"value": value},
                None,
                True,
                len(value),
                value.encode("utf-8", "surrogatepass").hex(),
            ]
        )
    if isinstance(value, bool):
        return rng.choice([str(value).lower(), int(value), "1" if value else "0"])
    if isinstance(value, int | float):
        return rng.choice([str(value), [value], f" {value} ", f"{value}.0", -value])
    if isinstance(value, list):
        return rng.choice([json.dumps(value, ensure_ascii=False), {"0": value}, value[:0], None])
    if isinstance(value, dict):
        return rng.choice([[value], json.dumps(value, ensure_ascii=False), list(value), None])
    return rng.choice(["", 0, [], {}])


def _mutate_parties(value: Any, rng: random.Random) -> Any:
    parties = value
    if isinstance(value, str):
        try:
            parties = json.loads(value)
        except (ValueError, RecursionError):
            return value + rng.choice(['"', "]", "[", '{"name":"x"', ""])
    if not isinstance(parties, list) or not parties:
        parties = [{"name": "x", "phone": "13800138000"}]
    parties = [dict(p) if isinstance(p, dict) else p for p in parties]
    pick = rng.randrange(8)
    if pick == 0:
        count = rng.choice([2, 50, 600, 1100])  # at most 1,100 entries (~55 KB), however repeated
        parties = (parties * count)[:count]
    elif pick == 1:
        parties = []
    elif pick == 2 and isinstance(parties[0], dict):
        parties[0]["phone"] = _scalar(rng)
    elif pick == 3 and isinstance(parties[0], dict):
        parties[0]["name"] = _scalar(rng)
    elif pick == 4 and isinstance(parties[0], dict):
        parties[0].pop(rng.choice(["name", "phone"]), None)
    elif pick == 5:
        parties.append(_scalar(rng))
    elif pick == 6 and isinstance(parties[0], dict):
        parties[0]["phone"] = rng.choice(PHONES) + rng.choice(
            ["\n", "\x00", ",", ",*#", ",12345678901234567"]
        )
    else:
        parties = [
            {"name": "n", "phone": f"1390000{rng.randrange(10_000):04d}"}
            for _ in range(rng.randrange(1, 4))
        ]
    if rng.random() < 0.4:
        return json.dumps(parties, ensure_ascii=rng.random() < 0.5)
    return parties


def m_drop(body: dict[str, Any], rng: random.Random) -> None:
    if body:
        body.pop(rng.choice(list(body)))


def m_retype(body: dict[str, Any], rng: random.Random) -> None:
    if body:
        key = rng.choice(list(body))
        body[key] = _retype(body[key], rng)


def m_add(body: dict[str, Any], rng: random.Random) -> None:
    key = rng.choice([*FIELDS, "", "x" * rng.randrange(1, 300), "ACTION", "appid ", "\x00"])
    body[key] = _scalar(rng)


def m_nest(body: dict[str, Any], rng: random.Random) -> None:
    if body:
        key = rng.choice(list(body))
        for _ in range(rng.randrange(1, 4)):
            body[key] = [body[key]] if rng.random() < 0.5 else {key: body[key]}


def m_huge(body: dict[str, Any], rng: random.Random) -> None:
    body[rng.choice(FIELDS)] = _huge(rng)


def m_control(body: dict[str, Any], rng: random.Random) -> None:
    strings = [k for k, v in body.items() if isinstance(v, str)] or ["CustomParm"]
    key = rng.choice(strings)
    text = str(body.get(key, ""))
    at = rng.randrange(len(text) + 1)
    control = chr(rng.choice([*range(0x20), 0x7F, *range(0x80, 0xA0)]))
    body[key] = text[:at] + control + text[at:]


def m_unicode(body: dict[str, Any], rng: random.Random) -> None:
    strings = [k for k, v in body.items() if isinstance(v, str)] or ["meetingname"]
    key = rng.choice(strings)
    text = str(body.get(key, ""))
    at = rng.randrange(len(text) + 1)
    body[key] = text[:at] + rng.choice(WEIRD_TEXT) + text[at:]


def m_parties(body: dict[str, Any], rng: random.Random) -> None:
    body["parties"] = _mutate_parties(body.get("parties"), rng)


def m_deep(body: dict[str, Any], rng: random.Random) -> None:
    body[rng.choice(["parties", "confid", "CustomParm", "x"])] = _deep(rng)


def m_action(body: dict[str, Any], rng: random.Random) -> None:
    actions = sorted(set().union(*wa.ACTIONS_BY_FUNC_URL.values()))
    body["action"] = rng.choice([*actions, "", "CREATEMEETING", "createMeeting ", "queryBalance"])


def m_number_field(body: dict[str, Any], rng: random.Random) -> None:
    key = rng.choice(["maxmembers", "after", "limit", "bookmeeting", "booktime"])
    body[key] = rng.choice(
        [-1, 0, 1, 1001, 2**64, "1e3", "0x10", "١٠", "10 ", 1.5, "NaN", "inf", True, "9" * 400]
    )


MUTATORS: dict[str, Callable[[dict[str, Any], random.Random], None]] = {
    "drop": m_drop,
    "retype": m_retype,
    "add": m_add,
    "nest": m_nest,
    "huge": m_huge,
    "control": m_control,
    "unicode": m_unicode,
    "parties": m_parties,
    "deep": m_deep,
    "action": m_action,
    "number": m_number_field,
}


# ---- serializing and byte-level mutations -------------------------------------------------------


def _dump(body: dict[str, Any], rng: random.Random) -> tuple[str, str]:
    """JSON, sometimes with the seed's unescaped parties string, duplicated keys or deep text."""
    pick = rng.randrange(10)
    if pick == 0 and isinstance(body.get("parties"), str | list):
        parties = body["parties"]
        inner = parties if isinstance(parties, str) else json.dumps(parties, ensure_ascii=False)
        rest = {k: v for k, v in body.items() if k != "parties"}
        head = json.dumps(rest, ensure_ascii=False)[:-1]
        return f'{head}{"," if rest else ""}"parties":"{inner}"}}', "unescaped"  # the seed's form
    if pick == 1 and body:  # a key twice, the second with another value
        key = rng.choice(list(body))
        text = json.dumps(body, ensure_ascii=False)
        return f"{text[:-1]},{json.dumps(key)}:{json.dumps(_scalar(rng))}}}", "dupkey"
    if pick == 2:  # deep nesting beyond what a dict can hold: as text
        text = json.dumps(body, ensure_ascii=False)
        key = rng.choice(["parties", "confid", "zz"])
        return f'{text[:-1]}{"," if body else ""}"{key}":{_deep_text(rng)}}}', "deeptext"
    if pick == 3:
        return json.dumps(body, ensure_ascii=True, indent=rng.choice([None, 1, 4])), ""
    return json.dumps(body, ensure_ascii=False, allow_nan=True), ""


def _bytes_mutation(raw: bytes, rng: random.Random) -> bytes:
    pick = rng.randrange(6)
    if pick == 0 and raw:  # truncation
        return raw[: rng.randrange(len(raw))]
    if pick == 1 and raw:  # byte flips
        data = bytearray(raw)
        for _ in range(rng.randrange(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if pick == 2 and raw:  # a byte inserted: invalid UTF-8, a stray quote, a NUL
        at = rng.randrange(len(raw) + 1)
        return (
            raw[:at]
            + rng.choice([b"\xff", b"\xc3", b'"', b"\x00", b"\\", b"\xed\xa0\x80"])
            + raw[at:]
        )
    if pick == 3:  # a valid JSON text that is not an object
        return rng.choice([b"[]", b"null", b"1", b'"x"', b"", b" ", b"\xef\xbb\xbf{}", raw * 2])
    if pick == 4 and raw:  # a piece repeated
        a = rng.randrange(len(raw))
        b = min(len(raw), a + rng.randrange(1, 40))
        return raw[:a] + raw[a:b] * rng.choice([2, 100, 2_000]) + raw[b:]
    return raw + rng.choice([b"\n", b"}", b",", b"\x00", b"garbage"])


@dataclass(frozen=True)
class Body:
    index: int
    func_url: str
    raw: bytes
    mutators: tuple[str, ...]


def generate(
    seed: int, count: int, appid: str, meid: str, allow_known: bool = False
) -> Iterator[Body]:
    """`count` bodies, the same for the same seed, appid and room number."""
    rng = random.Random(seed)
    pool = seeds(appid, meid)
    names = [name for name in MUTATORS if allow_known or name not in KNOWN]
    func_urls = sorted(wa.ACTIONS_BY_FUNC_URL)
    for index in range(count):
        seed_body = rng.choice(pool)
        used: list[str] = []
        if isinstance(seed_body, str):
            text = seed_body
            if rng.random() < 0.5:  # the raw example, retouched as text
                text = text.replace("150****0804", rng.choice(PHONES)).replace(
                    "张三", str(_scalar(rng))
                )
                used.append("seedtext")
        else:
            body = json.loads(json.dumps(seed_body))
            for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 5])):
                name = rng.choice(names)
                MUTATORS[name](body, rng)
                used.append(name)
            if body.get("action") == wa.DESTROY_MEETING and body.get("confid") == meid:
                body["confid"] = "000000"  # keep the fuzz meeting alive for the other bodies
            text, form = _dump(body, rng)
            used += [form] if form else []
        try:
            raw = text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: as the client's bytes would carry it
            raw = text.encode("utf-8", "surrogatepass")
        if rng.random() < 0.15:
            raw = _bytes_mutation(raw, rng)
            used.append("bytes")
        func_url = wa.TELEMEETING if rng.random() < 0.8 else rng.choice(func_urls)
        yield Body(index, func_url, raw, tuple(used))


# ---- sending and judging ------------------------------------------------------------------------


def short(raw: bytes, limit: int = 300) -> str:
    text = raw[:limit].decode("utf-8", "backslashreplace")
    return text + (f"… ({len(raw)} bytes)" if len(raw) > limit else "")


def label(body: Body) -> str:
    return f"#{body.index} {body.func_url} {'+'.join(body.mutators) or 'seed'}"


def envelope_problem(status: int, content: bytes) -> str | None:
    """Why an answer is not the contract's envelope; None when it is."""
    try:
        body = json.loads(content)
    except ValueError:
        return f"HTTP {status}, not JSON: {short(content, 120)}"
    if not isinstance(body, dict) or list(body)[:3] != ENVELOPE_KEYS:
        return f"HTTP {status}, not the envelope: {short(content, 120)}"
    if body["statusCode"] not in CODES or not isinstance(body["statusMsg"], str):
        return f"HTTP {status}, unknown statusCode: {short(content, 120)}"
    return None


def rss_kib(pid: int | None) -> int | None:
    """VmRSS of `pid` and all its descendants (Linux /proc), KiB."""
    if pid is None:
        return None
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


@dataclass
class Finding:
    body: Body
    what: str

    def describe(self) -> str:
        return f"{label(self.body)}: {self.what}\n    body: {short(self.body.raw)}"


@dataclass
class Report:
    sent: int = 0
    seconds: float = 0.0
    codes: Counter[str] = field(default_factory=Counter)
    http: Counter[int] = field(default_factory=Counter)
    non_envelope: list[Finding] = field(default_factory=list)
    internal: list[Finding] = field(default_factory=list)
    transport: list[Finding] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    slowest: list[tuple[float, Body]] = field(default_factory=list)
    slow: list[Finding] = field(default_factory=list)  # slow on every resend
    rss_before_kib: int | None = None
    rss_after_kib: int | None = None

    @property
    def rps(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def percentile(self, pct: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))] if ordered else 0.0

    @property
    def failed(self) -> bool:
        return bool(self.non_envelope or self.internal or self.slow or self.transport)

    def summary(self) -> str:
        lines = [
            f"bodies sent: {self.sent} in {self.seconds:.1f} s ({self.rps:.0f} requests/s)",
            "statusCodes: "
            + ", ".join(f"{c}×{n}" for c, n in sorted(self.codes.items(), key=lambda i: -i[1])),
            "HTTP statuses: " + ", ".join(f"{c}×{n}" for c, n in sorted(self.http.items())),
            f"latency ms: p50 {self.percentile(50):.1f}, p99 {self.percentile(99):.1f}, "
            f"max {max(self.latencies_ms, default=0):.1f}",
            f"server RSS: {self.rss_before_kib} KiB before, {self.rss_after_kib} KiB after",
            f"non-envelope answers: {len(self.non_envelope)}; -100: {len(self.internal)}; "
            f"transport errors: {len(self.transport)}; repeatably slow: {len(self.slow)}",
        ]
        for ms, body in self.slowest[:3]:
            lines.append(f"slowest: {ms:.1f} ms {label(body)}: {short(body.raw, 200)}")
        for finding in [*self.non_envelope, *self.internal, *self.transport, *self.slow][:20]:
            lines.append(finding.describe())
        return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    base_url: str
    sid: str
    token: str
    appid: str
    pid: int | None = None


def signed(target: Target) -> dict[str, tuple[str, dict[str, str]]]:
    """URL and headers per funcURL, built and signed by the SDK's request builder."""
    calls = Calls(
        target.sid, target.token, target.appid, target.base_url, "Asia/Shanghai", RetryPolicy()
    )
    out = {}
    for func_url in wa.ACTIONS_BY_FUNC_URL:
        url, headers, _ = calls.request(Call(wa.QUERY_MEETING, func_url, {}, idempotent=True))
        out[func_url] = (url, headers)
    return out


async def _send(
    client: httpx.AsyncClient, where: dict[str, tuple[str, dict[str, str]]], body: Body
) -> tuple[httpx.Response, float]:
    url, headers = where[body.func_url]
    started = time.perf_counter()
    response = await client.post(url, content=body.raw, headers=headers)
    return response, (time.perf_counter() - started) * 1000


async def fuzz_async(
    target: Target,
    bodies: int,
    seed: int = 0,
    connections: int = 4,
    slow_ms: float = 100.0,
    meid: str | None = None,
    allow_known: bool = False,
    progress: Callable[[Report], None] | None = None,
) -> Report:
    """Send `bodies` mutated bodies over `connections` kept-alive connections; the report."""
    report = Report(rss_before_kib=rss_kib(target.pid))
    where = signed(target)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    timeout = httpx.Timeout(60.0)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        meid = meid or await _fuzz_meeting(client, where, target, seed)
        source = generate(seed, bodies, target.appid, meid, allow_known)
        candidates: list[tuple[float, Body]] = []
        started = time.perf_counter()

        async def worker() -> None:
            for body in source:  # one generator shared by the workers, in order
                try:
                    response, ms = await _send(client, where, body)
                except httpx.HTTPError as exc:
                    report.transport.append(Finding(body, f"{type(exc).__name__}: {exc}"))
                    report.sent += 1
                    continue
                report.sent += 1
                report.latencies_ms.append(ms)
                report.http[response.status_code] += 1
                problem = envelope_problem(response.status_code, response.content)
                if problem:
                    report.non_envelope.append(Finding(body, problem))
                else:
                    code = response.json()["statusCode"]
                    report.codes[code] += 1
                    if code == INTERNAL:
                        report.internal.append(Finding(body, response.text[:200]))
                if ms > slow_ms or len(candidates) < 5 or ms > candidates[-1][0]:
                    candidates.append((ms, body))
                    candidates.sort(key=lambda item: -item[0])
                    keep = max(5, sum(1 for c in candidates if c[0] > slow_ms))
                    del candidates[min(keep, RECHECKS) :]
                if progress and report.sent % 5000 == 0:
                    report.seconds = time.perf_counter() - started
                    progress(report)

        await asyncio.gather(*(worker() for _ in range(connections)))
        report.seconds = time.perf_counter() - started
        report.slowest = candidates[:5]
        # Anything over the bound is sent again alone on an idle connection: slow if every time.
        for ms, body in candidates:
            if ms <= slow_ms:
                continue
            again = []
            for _ in range(2):
                await asyncio.sleep(0.05)
                try:
                    again.append((await _send(client, where, body))[1])
                except httpx.HTTPError:
                    again.append(float("inf"))
            if min(again) > slow_ms:
                report.slow.append(
                    Finding(body, f"{ms:.0f} ms, again {', '.join(f'{t:.0f}' for t in again)} ms")
                )
    report.rss_after_kib = rss_kib(target.pid)
    return report


async def _fuzz_meeting(
    client: httpx.AsyncClient,
    where: dict[str, tuple[str, dict[str, str]]],
    target: Target,
    seed: int,
) -> str:
    """A meeting that exists, with a room number fixed by the seed (so bodies repeat exactly)."""
    meid = f"fuzz{seed}"
    raw = json.dumps(
        {"action": wa.CREATE_MEETING, "appid": target.appid, "confid": meid, "meetingname": "fuzz"}
    ).encode()
    await _send(client, where, Body(-1, wa.TELEMEETING, raw, ()))  # -101 if it exists: fine
    return meid


def fuzz(target: Target, bodies: int, **options: Any) -> Report:
    return asyncio.run(fuzz_async(target, bodies, **options))


# ---- a server of our own -------------------------------------------------------------------------


def _own_server(workdir: Path) -> tuple[Any, Target]:
    """`telemeeting serve` on a fresh SQLite file with an account and a sandbox app (the CLI's)."""
    from _common import cli_json, served  # bench/ is not a package: found through sys.path above

    db = f"sqlite+aiosqlite:///{workdir / 'fuzz.db'}"
    account = cli_json("account", "create", "--name", "fuzz", db=db)
    app = cli_json("app", "create", "--account", account["sid"], "--env", "sandbox", db=db)
    sid, token, appid = account["sid"], account["auth_token"], app["appid"]
    context = served(db, 0.3, workdir / "server.log", sandbox=True, who="server")
    proc, base = context.__enter__()
    return context, Target(base, sid, token, appid, proc.pid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bodies", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--slow-ms", type=float, default=100.0)
    parser.add_argument("--url", help="a running server's listener (else one is started)")
    parser.add_argument("--sid")
    parser.add_argument("--token")
    parser.add_argument("--appid")
    parser.add_argument("--pid", type=int, help="the running server's pid, for its RSS")
    parser.add_argument(
        "--allow-known",
        action="store_true",
        help="also mutators whose findings are reported: " + (", ".join(KNOWN) or "none"),
    )
    parser.add_argument("--show", type=int, default=0, help="print the first N bodies and exit")
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args(argv)
    if opts.show:
        for body in generate(
            opts.seed, opts.show, opts.appid or "APPID", f"fuzz{opts.seed}", opts.allow_known
        ):
            print(f"{label(body)}: {short(body.raw)}")
        return 0

    def progress(report: Report) -> None:
        print(
            f"  {report.sent} sent, {report.rps:.0f}/s, codes {dict(report.codes.most_common(6))}",
            file=sys.stderr,
            flush=True,
        )

    options = {
        "seed": opts.seed,
        "connections": opts.connections,
        "slow_ms": opts.slow_ms,
        "allow_known": opts.allow_known,
        "progress": progress,
    }
    with tempfile.TemporaryDirectory(prefix="fuzz-api-") as tmp:
        context = None
        if opts.url:
            target = Target(opts.url.rstrip("/"), opts.sid, opts.token, opts.appid, opts.pid)
        else:
            context, target = _own_server(Path(tmp))
        try:
            report = fuzz(target, opts.bodies, **options)
        finally:
            if context is not None:
                context.__exit__(None, None, None)
    if opts.json:
        out = {
            "sent": report.sent,
            "seconds": report.seconds,
            "rps": report.rps,
            "codes": dict(report.codes),
            "http": dict(report.http),
            "p50_ms": report.percentile(50),
            "p99_ms": report.percentile(99),
            "max_ms": max(report.latencies_ms, default=0),
            "rss_before_kib": report.rss_before_kib,
            "rss_after_kib": report.rss_after_kib,
            "findings": [
                f.describe()
                for f in [*report.non_envelope, *report.internal, *report.transport, *report.slow]
            ],
        }
        print(json.dumps(out, ensure_ascii=False, indent=1))
    else:
        print(report.summary())
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
