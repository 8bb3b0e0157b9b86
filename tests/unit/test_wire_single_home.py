"""The contract's rules have one home, `telemeeting.wire` (issue 11 item 9): the SDK, the client
CLI, the operator CLI and the benchmarks import URL paths and versions, funcURLs, action names,
status codes and state names from it and never type them again.

The check reads the source (AST), so it sees code, not comments or docstrings. It flags:
- a string holding a path version (`201612`, `201512`), the `/sid/` segment or a funcURL;
- a string that is exactly an action name or a non-zero status code;
- a state name, or the success code "0", compared against (`==`, `!=`, `in`), or a state name
  given to a constant (`ANSWER = "answer"`): that is where a re-typed rule would decide
  something (elsewhere "ended" or "0" is just a word or a number).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from telemeeting.wire import account, cdr, states
from telemeeting.wire.actions import ACTIONS_BY_FUNC_URL
from telemeeting.wire.endpoints import ENDPOINTS, SID, VERSIONS
from telemeeting.wire.status import Status

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(
    [
        *(ROOT / "src/telemeeting/client").rglob("*.py"),
        ROOT / "src/telemeeting/cli.py",
        *(ROOT / "bench").glob("*.py"),
    ]
)

_VERSION = re.compile(rf"(?<![0-9])({'|'.join(sorted(VERSIONS))})(?![0-9])")
_FUNC_URLS = frozenset(func_url for _, _, func_url in ENDPOINTS)
_ACTIONS = frozenset().union(*ENDPOINTS.values(), *ACTIONS_BY_FUNC_URL.values())
_CODES = frozenset(status.code for status in Status) - {Status.OK.code}
_STATES = frozenset({*states.LEG_STATES, *states.MEETING_STATES})


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of every docstring node (they describe the rules; they do not apply them)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.add(id(value))
    return found


def _compared(tree: ast.AST) -> Iterator[ast.Constant]:
    """String constants that are an operand of a comparison, or inside a literal collection
    that is one (`x in ("answer", "disconnect")`)."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        for operand in (node.left, *node.comparators):
            for inner in ast.walk(operand):
                if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
                    yield inner


def _constants(tree: ast.AST) -> Iterator[ast.Constant]:
    """String constants given to an UPPER_CASE name (a module or class constant)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            named = any(isinstance(t, ast.Name) and t.id.isupper() for t in targets)
            if named and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                yield node.value


def retyped(source: str) -> list[tuple[int, str]]:
    """(line, why) for each re-typed rule in `source`."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    problems: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            continue
        if id(node) in skip:
            continue
        text = node.value
        if _VERSION.search(text):
            problems.append((node.lineno, f"a path version in {text!r}"))
        if f"/{SID}/" in text or text.startswith(f"{SID}/"):
            problems.append((node.lineno, f"the /{SID}/ segment in {text!r}"))
        if any(func_url in text for func_url in _FUNC_URLS):
            problems.append((node.lineno, f"a funcURL in {text!r}"))
        if text in _ACTIONS:
            problems.append((node.lineno, f"the action {text!r}"))
        if text in _CODES:
            problems.append((node.lineno, f"the status code {text!r}"))
    for node in _compared(tree):
        if node.value in _STATES or node.value == Status.OK.code:
            problems.append((node.lineno, f"{node.value!r} compared against"))
    for node in _constants(tree):
        if node.value in _STATES:
            problems.append((node.lineno, f"the state {node.value!r} given to a constant"))
    return sorted(set(problems))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_rule_of_the_contract_is_typed_again(path: Path) -> None:
    problems = retyped(path.read_text(encoding="utf-8"))
    assert not problems, "\n".join(f"{path.name}:{line}: {why}" for line, why in problems)


@pytest.mark.parametrize(
    "source",
    [
        'URL = f"{base}/201612/sid/{sid}/call/TeleMeeting.wx"',
        'def f(a):\n    return a.get("statusCode") != "0"',
        'BODY = {"action": "createMeeting"}',
        'RATE = frozenset({"-104"})',
        'def settled(s):\n    return s in ("answer", "disconnect")',
        'CDR = "CallCdr.wx"',
        'PREFIX = f"/{v}/sid/"',
        'ANSWER = "answer"',
    ],
)
def test_the_check_sees_each_kind_of_copy(source: str) -> None:
    assert retyped(source)


@pytest.mark.parametrize(
    "source",
    [
        '"""Docstrings may say /201612/sid/ and createMeeting."""',
        'COLUMNS = ("requestid", "called", "ended")',
        'DEFAULT = "0"',
        'DAY = "20161201"',
        'LABEL = "createMeeting requests in flight"',
    ],
)
def test_the_check_leaves_words_and_numbers_alone(source: str) -> None:
    assert not retyped(source)


def test_the_rules_scanned_for_are_the_contracts() -> None:
    """Guard the guard: the sets it looks for are not empty (a rename in wire/ would empty
    them silently)."""
    assert {"201612", "201512"} <= VERSIONS
    assert {"TeleMeeting.wx", "MeetingQuery.wx", cdr.CALL_CDR, account.GET_BALANCE} <= _FUNC_URLS
    assert {"createMeeting", "inviteJoinMeeting", account.QUERY_BALANCE} <= _ACTIONS
    assert {"-104", "-300"} <= _CODES
    assert {"callout", "answer", "disconnect", "ended"} <= _STATES
